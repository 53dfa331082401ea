#!/usr/bin/env python3
"""Helper of bench/idle-connections (Python standard library only).

  hold     open N TLS connections that never send a byte, from source addresses 127.0.x.y, keep
           them open and reopen those the server closes, until --seconds have passed; writes its
           counts to --status every half second.
  measure  R sequential client_credentials token requests, each on a fresh TCP + TLS connection
           from --source; prints p50/p90/p99/max latency and failures.

Loopback only: the target is always 127.0.0.1.
"""

import argparse
import asyncio
import base64
import http.client
import json
import os
import socket
import ssl
import sys
import time


def client_context(verify_ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify_ca:
        ctx.load_verify_locations(verify_ca)
    else:
        # Holders do not care who answers; skipping verification saves client CPU, which shares
        # the machine's cores with the server.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Counts:
    def __init__(self):
        self.held = 0  # TLS done, still open
        self.peak = 0
        self.opened = 0  # handshakes completed, in all
        self.failed = 0  # attempts that never completed a handshake (refused, timed out, reset)
        self.closed_by_server = 0  # held connections the server closed
        self.ramped = False  # every connection slot has made its first attempt

    def as_dict(self):
        return dict(self.__dict__)


async def hold_one(port, source, ctx, counts, deadline, reconnect_delay, after_first_attempt):
    """Keeps one silent connection open until the deadline, reopening it when the server closes
    it; calls after_first_attempt() once, when the first attempt has succeeded or failed."""
    first = True
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1",
                    port,
                    ssl=ctx,
                    server_hostname="localhost",
                    local_addr=(source, 0),
                    ssl_handshake_timeout=15,
                ),
                timeout=15,
            )
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            counts.failed += 1
            if first:
                first = False
                after_first_attempt()
            await asyncio.sleep(reconnect_delay)
            continue
        counts.opened += 1
        counts.held += 1
        counts.peak = max(counts.peak, counts.held)
        if first:
            first = False
            after_first_attempt()
        try:
            remaining = deadline - time.monotonic()
            data = await asyncio.wait_for(reader.read(1), timeout=max(remaining, 0.01))
            if not data:
                counts.closed_by_server += 1
        except asyncio.TimeoutError:
            pass  # the run is over
        except (OSError, ssl.SSLError):
            counts.closed_by_server += 1
        finally:
            counts.held -= 1
            writer.transport.abort()
        await asyncio.sleep(reconnect_delay)


async def hold(args):
    sources = args.sources.split(",")
    ctx = client_context()
    counts = Counts()
    deadline = time.monotonic() + args.seconds
    # At most this many first attempts under way at once, so the listen backlog does not overflow.
    opening = asyncio.Semaphore(args.concurrency)
    first_attempts = [0]

    async def slot(i):
        await opening.acquire()
        done = [False]

        def after_first_attempt():
            if not done[0]:
                done[0] = True
                first_attempts[0] += 1
                opening.release()

        await hold_one(
            args.port, sources[i % len(sources)], ctx, counts, deadline, args.reconnect_delay, after_first_attempt
        )
        after_first_attempt()

    async def report():
        while True:
            counts.ramped = first_attempts[0] >= args.connections
            tmp = args.status + ".tmp"
            with open(tmp, "w") as f:
                json.dump(counts.as_dict(), f)
            os.replace(tmp, args.status)
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.5)

    reporter = asyncio.create_task(report())
    await asyncio.gather(*(slot(i) for i in range(args.connections)))
    await reporter


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def measure(args):
    ctx = client_context(args.ca)
    body = "grant_type=client_credentials&scope=api.read"
    auth = base64.b64encode(b"acme-m2m:acme-m2m-secret").decode()
    headers = {
        "Authorization": "Basic " + auth,
        "Content-Type": "application/x-www-form-urlencoded",
        "Connection": "close",
    }
    latencies, failures, consecutive, errors = [], 0, 0, {}
    attempted = 0
    for _ in range(args.requests):
        attempted += 1
        start = time.monotonic()
        ok = False
        try:
            # A fresh connection to the listener on 127.0.0.1 (not ::1), checked as "localhost".
            conn = http.client.HTTPSConnection("localhost", args.port, timeout=args.timeout, context=ctx)
            sock = socket.create_connection(("127.0.0.1", args.port), args.timeout, (args.source, 0))
            # As curl and wrk do: without it the client's TLS Finished and request wait on each
            # other's ACK (Nagle + delayed ACK), and half the requests take 40 ms more.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sock = ctx.wrap_socket(sock, server_hostname="localhost")
            conn.request("POST", "/acme/connect/token", body=body, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            conn.close()
            ok = r.status == 200 and "access_token" in json.loads(payload)
            if not ok:
                errors[f"status {r.status}"] = errors.get(f"status {r.status}", 0) + 1
        except Exception as e:  # a timeout, a reset, a refused handshake: all count as failures
            name = type(e).__name__
            errors[name] = errors.get(name, 0) + 1
        elapsed = time.monotonic() - start
        if ok:
            latencies.append(elapsed)
            consecutive = 0
        else:
            failures += 1
            consecutive += 1
            if args.stop_after and consecutive >= args.stop_after:
                break
    latencies.sort()
    ms = lambda v: f"{v * 1000:.1f} ms"
    result = {
        "label": args.label,
        "requests_planned": args.requests,
        "attempted": attempted,
        "ok": len(latencies),
        "failed": failures,
        "errors": errors,
        "p50": ms(percentile(latencies, 50)) if latencies else "-",
        "p90": ms(percentile(latencies, 90)) if latencies else "-",
        "p99": ms(percentile(latencies, 99)) if latencies else "-",
        "max": ms(latencies[-1]) if latencies else "-",
    }
    stopped = f" (stopped after {args.stop_after} failures in a row)" if attempted < args.requests else ""
    print(
        f"{args.label}: {attempted} requests{stopped}: {len(latencies)} ok, {failures} failed {errors or ''}; "
        f"latency p50 {result['p50']}, p90 {result['p90']}, p99 {result['p99']}, max {result['max']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--connections", type=int, required=True)
    h.add_argument("--sources", default="127.0.1.1", help="comma-separated loopback source addresses")
    h.add_argument("--seconds", type=float, default=60)
    h.add_argument("--concurrency", type=int, default=200)
    h.add_argument("--reconnect-delay", type=float, default=1.0)
    h.add_argument("--status", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--ca", required=True)
    m.add_argument("--source", default="127.0.0.1")
    m.add_argument("--requests", type=int, default=200)
    m.add_argument("--timeout", type=float, default=2.0)
    m.add_argument("--stop-after", type=int, default=10)
    m.add_argument("--label", default="measure")
    m.add_argument("--json")
    args = p.parse_args()
    for a in (getattr(args, "sources", "") or "").split(",") + [getattr(args, "source", "127.0.0.1")]:
        if a and not a.startswith("127."):
            sys.exit(f"loopback source addresses only (127.0.0.0/8), not {a}")
    if args.cmd == "hold":
        asyncio.run(hold(args))
    else:
        measure(args)


if __name__ == "__main__":
    main()
