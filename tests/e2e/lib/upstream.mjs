// An upstream identity provider (third-party software) in a child process, for the federation
// end-to-end scripts. The child announces itself with one stdout line
//   @@ready {"base":"http://127.0.0.1:PORT", ...}
// and exits when its stdin closes: when the script stops it, and also when the script itself is
// killed (a timeout in tests/it/e2e.rs), so no identity provider outlives its test.

import { spawn } from 'node:child_process';

const READY = '@@ready ';

/** Starts `node script` with `env`; resolves to what the child announced, plus `stop()`. */
export function startUpstream(nodeBinary, script, env, { timeoutMs = 20000 } = {}) {
  const child = spawn(nodeBinary, [script], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let log = '';
  let stdoutLine = '';
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not announce itself within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    const stop = async () => {
      child.stdin.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
    };
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${nodeBinary} ${script}: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited early (code ${code}, signal ${signal}):\n${log}`));
    });
    child.stderr.on('data', (chunk) => {
      log += chunk;
    });
    child.stdout.on('data', (chunk) => {
      log += chunk;
      stdoutLine += chunk;
      let nl;
      while ((nl = stdoutLine.indexOf('\n')) >= 0) {
        const line = stdoutLine.slice(0, nl);
        stdoutLine = stdoutLine.slice(nl + 1);
        if (line.startsWith(READY)) {
          clearTimeout(timer);
          resolve({ ...JSON.parse(line.slice(READY.length)), stop, log: () => log });
        }
      }
    });
  });
}

/** In the child: announces `info` to the parent, and exits when the parent goes away. */
export function announce(info) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  process.stdout.write(`${READY}${JSON.stringify(info)}\n`);
}
