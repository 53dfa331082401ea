// What the end-to-end scripts share: one "ok - ..." / "not ok - ..." line per check, the inputs
// from the environment, and the OAuth error code of a failure thrown by openid-client.
// The Rust tests in tests/it/e2e.rs read these lines; a run ends with "# all N checks passed"
// and exit code 0, or with exit code 1.

import * as client from 'openid-client';

let failures = 0;
let checks = 0;

export function ok(name) {
  checks += 1;
  console.log(`ok - ${name}`);
}

export function notOk(name, reason) {
  checks += 1;
  failures += 1;
  console.log(`not ok - ${name}: ${reason}`);
}

/** How many checks failed so far. */
export function failureCount() {
  return failures;
}

export function check(name, condition, reason) {
  if (condition) ok(name);
  else notOk(name, reason);
  return Boolean(condition);
}

/** Thrown by `need`: the checks after this one depend on it, so the run stops here. */
export class Halt extends Error {}

/** A check the rest of the run depends on: when it fails, the run stops. */
export function need(name, condition, reason) {
  if (!check(name, condition, reason)) throw new Halt(name);
}

export function fatal(message) {
  console.log(`not ok - ${message}`);
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

export function env(name) {
  const value = process.env[name];
  if (value === undefined || value === '') fatal(`environment variable ${name} is not set`);
  return value;
}

/** Refuses to run with TLS verification switched off: the dev CA is trusted instead. */
export function requireTlsVerification() {
  if (process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') {
    fatal('NODE_TLS_REJECT_UNAUTHORIZED=0 disables TLS verification; trust the dev CA with NODE_EXTRA_CA_CERTS instead');
  }
  if (!process.env.NODE_EXTRA_CA_CERTS) {
    console.log('# NODE_EXTRA_CA_CERTS is not set: the server certificate must chain to a system CA');
  }
}

export function describeError(err) {
  if (err === null || typeof err !== 'object') return String(err);
  const parts = [`${err.name ?? 'Error'}: ${err.message}`];
  if (err.code) parts.push(`code=${err.code}`);
  if (err.status) parts.push(`status=${err.status}`);
  if (err.error) parts.push(`error=${err.error}`);
  if (err.error_description) parts.push(`error_description=${err.error_description}`);
  if (err.cause instanceof Error) {
    parts.push(`cause=${err.cause.name}: ${err.cause.message}`);
  } else if (err.cause !== undefined) {
    try {
      parts.push(`cause=${JSON.stringify(err.cause)}`);
    } catch {
      // not serialisable; the message is enough
    }
  }
  return parts.join(' ');
}

// The OAuth `error` code carried by a failure: an error response at the redirect URI
// (AuthorizationResponseError), a JSON error body (ResponseBodyError), or a WWW-Authenticate
// challenge (RFC 6749 §5.2 asks for one on a 401 after HTTP Basic; its body is still unread).
export async function oauthErrorOf(err) {
  if (err instanceof client.AuthorizationResponseError) {
    return { error: err.error, via: 'error response at the redirect URI' };
  }
  if (err instanceof client.ResponseBodyError) {
    return { error: err.error, via: `ResponseBodyError status=${err.status}` };
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const fromChallenge = err.cause?.find((c) => c?.parameters?.error)?.parameters?.error;
    if (fromChallenge) {
      return { error: fromChallenge, via: `WWW-Authenticate challenge status=${err.status}` };
    }
    try {
      const body = await err.response.json();
      return { error: body?.error, via: `WWW-Authenticate challenge + JSON body status=${err.status}` };
    } catch (bodyErr) {
      return { error: undefined, via: `WWW-Authenticate challenge, unreadable body: ${bodyErr.message}` };
    }
  }
  return { error: undefined, via: describeError(err) };
}

/** Checks that `promise` fails with the OAuth error `expected`. */
export async function expectOAuthError(name, expected, promise) {
  let response;
  try {
    response = await promise;
  } catch (err) {
    const { error, via } = await oauthErrorOf(err);
    return check(`${name} (${via})`, error === expected, `expected error "${expected}", got "${error}"`);
  }
  notOk(name, `expected error "${expected}" but it succeeded (${JSON.stringify(response)?.slice(0, 200)})`);
  return false;
}

/**
 * Runs one independent part of a script: a failed `need` (or an unexpected exception) inside it
 * ends that part only, and the next part still runs.
 */
export async function section(title, body) {
  console.log(`# ${title}`);
  try {
    await body();
  } catch (err) {
    if (err instanceof Halt) {
      console.log(`# ${title}: stopped, the rest of it depends on "${err.message}"`);
    } else {
      notOk(`${title}: ends without an unexpected exception`, describeError(err));
    }
  }
}

/** Runs `main`, then prints the verdict and exits: 0 only when every check passed. */
export async function run(main) {
  try {
    await main();
  } catch (err) {
    if (err instanceof Halt) {
      console.log(`# stopped: the remaining checks depend on "${err.message}"`);
    } else {
      notOk('the run ends without an unexpected exception', describeError(err));
    }
  }
  if (failures > 0) {
    console.error(`FAIL: ${failures} of ${checks} checks failed`);
    process.exit(1);
  }
  console.log(`# all ${checks} checks passed`);
  process.exit(0);
}
