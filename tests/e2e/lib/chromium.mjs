// Headless Chromium (Debian's package) driven by playwright-core, as the end-to-end scripts use
// it: TLS verification stays on. Chromium does not trust the dev CA; instead of switching
// verification off, the test server's own key is pinned with --ignore-certificate-errors-spki-list
// (the base64 SHA-256 of the certificate's SubjectPublicKeyInfo), so any other certificate still
// fails.

import { createHash, X509Certificate } from 'node:crypto';
import { chromium } from 'playwright-core';

// A quiet headless run on a machine without outside network: without the background-networking
// flags Chromium keeps trying to reach Google's hosts, and fails at every start.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const STEP_TIMEOUT_MS = 10_000;

/** base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a PEM, as Chromium pins it. */
function spkiPin(pem) {
  const first = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
  if (!first) throw new Error('SERVER_CERT_PEM holds no certificate');
  const spki = new X509Certificate(first).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** Chromium at `executablePath`, trusting only the server certificate in `serverCertPem`. */
export function launchChromium(executablePath, serverCertPem) {
  return chromium.launch({
    executablePath,
    args: [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${spkiPin(serverCertPem)}`],
    timeout: STEP_TIMEOUT_MS,
  });
}

/** Collects what a person would not see but a broken page shows: console errors (a CSP
 * violation is one), uncaught exceptions, failed requests and error responses. */
export function watchForProblems(page, problems) {
  page.on('console', (message) => {
    // An error response is reported below with its URL, which this message lacks.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error at ${page.url()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`page error at ${page.url()}: ${err.message}`));
  page.on('requestfailed', (request) => {
    problems.push(`request failed: ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    // Browsers ask every origin for /favicon.ico unasked; the pages declare no icon.
    if (response.status() >= 400 && new URL(response.url()).pathname !== '/favicon.ico') {
      problems.push(`HTTP ${response.status()} for ${response.request().method()} ${response.url()}`);
    }
  });
}

