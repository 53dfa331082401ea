// saml-idp (npm saml-idp@1.2.1, mcguinness/saml-idp on samlp and xml-crypto) as an upstream SAML
// 2.0 identity provider of Portcullis, with its own user form. Started by federation_saml.mjs
// through lib/upstream.mjs. Listens on 127.0.0.1 on a free port, over HTTPS (Portcullis fetches
// its metadata, and calls upstreams over https only); its metadata is at /metadata and its SSO
// service (HTTP-Redirect and HTTP-POST) at /saml/sso.
//
// Environment:
//   UPSTREAM_TLS_CERT, UPSTREAM_TLS_KEY  its TLS certificate (for 127.0.0.1) and key, PEM files
//   IDP_ENTITY_ID                the IdP's entity id (Issuer)
//   IDP_KEY_FILE, IDP_CERT_FILE  its signing key and certificate (PEM files)
//   ACS_URL, AUDIENCE            Portcullis's Assertion Consumer Service and SP entity id

import https from 'node:https';
import samlIdp from 'saml-idp';
import { announce } from './upstream.mjs';

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`environment variable ${name} is not set`);
    process.exit(2);
  }
  return value;
}

// saml-idp takes its listen address from HOST and PORT when they are set: not here.
delete process.env.HOST;
delete process.env.PORT;

// runServer returns nothing: the port it got is learnt from its HTTPS server.
const createServer = https.createServer;
https.createServer = (...args) => {
  const server = createServer(...args);
  server.on('listening', () => {
    const base = `https://127.0.0.1:${server.address().port}`;
    announce({ base, metadata: `${base}/metadata`, sso: `${base}/saml/sso`, version: process.version });
  });
  return server;
};

samlIdp.runServer({
  host: '127.0.0.1',
  port: 0,
  issuer: env('IDP_ENTITY_ID'),
  key: env('IDP_KEY_FILE'),
  cert: env('IDP_CERT_FILE'),
  acsUrl: env('ACS_URL'),
  audience: env('AUDIENCE'),
  https: true,
  httpsPrivateKey: env('UPSTREAM_TLS_KEY'),
  httpsCert: env('UPSTREAM_TLS_CERT'),
});
