// Reference OP for bench/run: node-oidc-provider (certified OpenID Provider) issuing ES256-signed JWT
// access tokens for the client_credentials grant, configured like Portcullis' demo tenant "acme".
//
// Usage (Node 22, from bench/oidc-provider):
//   node server.mjs --cert ../../certs/server.pem --key ../../certs/server-key.pem --port 18543
// Listens on 127.0.0.1 only. No per-request logging.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
    port: { type: 'string', default: '18543' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
if (!args.cert || !args.key) {
  console.error('usage: node server.mjs --cert server.pem --key server-key.pem [--port 18543]');
  process.exit(2);
}
const port = Number(args.port);
const issuer = `https://localhost:${port}`;

// Fresh signing keys on every start, exported as private JWKs.
function jwk(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}
const jwks = {
  keys: [
    jwk('ec', { namedCurve: 'P-256' }, 'ES256', 'bench-es256'),
    // ID tokens default to RS256; the provider wants a key for it even though none is issued here.
    jwk('rsa', { modulusLength: 2048 }, 'RS256', 'bench-rs256'),
  ],
};

const RESOURCE = 'https://api.acme.test';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'acme-m2m',
      client_secret: 'acme-m2m-secret',
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'api.read',
      redirect_uris: [],
      response_types: [],
    },
  ],
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'api.read'],
  ttl: { ClientCredentials: 3600, AccessToken: 3600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api.read',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));

const server = createServer(
  { cert: readFileSync(args.cert), key: readFileSync(args.key) },
  provider.callback(),
);
server.keepAliveTimeout = 60_000;
server.listen(port, args.host, () => {
  console.error(`oidc-provider ${issuer} listening on ${args.host}:${port} (node ${process.version})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
