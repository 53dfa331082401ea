// A scripted browser for the end-to-end scripts: Node's fetch with `redirect: 'manual'` (each hop
// is looked at), a small cookie jar that honours Path and Secure, and forms read from the served
// HTML. Nothing listens at a client's redirect URI: the Location that points there is handed to
// the relying party.

/** Cookies as a browser keeps them (RFC 6265 §5.3), enough for host-only cookies. */
export class CookieJar {
  #cookies = new Map(); // `${host} ${path} ${name}` -> cookie

  /** Stores the Set-Cookie headers of a response to `requestUrl`. */
  store(requestUrl, setCookieHeaders) {
    const url = new URL(requestUrl);
    for (const header of setCookieHeaders) {
      const [pair, ...attributes] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const cookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        host: url.hostname,
        path: defaultPath(url.pathname),
        secure: false,
        httpOnly: false,
        sameSite: undefined,
        expired: false,
        raw: header,
      };
      let maxAge;
      let expires;
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.split('=');
        const value = rest.join('=').trim();
        switch (key.trim().toLowerCase()) {
          case 'path':
            if (value.startsWith('/')) cookie.path = value; // §5.2.4: else the default path
            break;
          case 'secure':
            cookie.secure = true;
            break;
          case 'httponly':
            cookie.httpOnly = true;
            break;
          case 'samesite':
            cookie.sameSite = value;
            break;
          case 'max-age':
            maxAge = Number.parseInt(value, 10);
            break;
          case 'expires':
            expires = Date.parse(value);
            break;
          default:
            break;
        }
      }
      // §5.3: Max-Age wins over Expires; a time in the past deletes the cookie.
      if (Number.isInteger(maxAge)) cookie.expired = maxAge <= 0;
      else if (Number.isFinite(expires)) cookie.expired = expires <= Date.now();
      // RFC 6265bis §5.7: a Secure cookie is only accepted from a secure origin.
      if (cookie.secure && url.protocol !== 'https:') continue;
      const key = `${cookie.host} ${cookie.path} ${cookie.name}`;
      if (cookie.expired) this.#cookies.delete(key);
      else this.#cookies.set(key, cookie);
    }
  }

  /** The Cookie header a browser sends to `requestUrl` (§5.4), longest paths first. */
  header(requestUrl) {
    const url = new URL(requestUrl);
    return [...this.#cookies.values()]
      .filter((c) => c.host === url.hostname)
      .filter((c) => pathMatches(url.pathname, c.path))
      .filter((c) => !c.secure || url.protocol === 'https:')
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  find(name) {
    return [...this.#cookies.values()].find((c) => c.name === name);
  }
}

// RFC 6265 §5.1.4
function defaultPath(path) {
  if (!path.startsWith('/')) return '/';
  const last = path.lastIndexOf('/');
  return last === 0 ? '/' : path.slice(0, last);
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath.charAt(cookiePath.length) === '/';
}

/** Fetch without following redirects, keeping cookies like a browser. */
export class ScriptedBrowser {
  constructor() {
    this.jar = new CookieJar();
  }

  /** GET or POST (a form); `cookie` replaces what the jar would send. */
  async request(url, { form, cookie } = {}) {
    const headers = { accept: 'text/html' };
    const cookieHeader = cookie ?? this.jar.header(url);
    if (cookieHeader) headers.cookie = cookieHeader;
    const init = { method: 'GET', headers, redirect: 'manual' };
    if (form) {
      init.method = 'POST';
      init.body = new URLSearchParams(form);
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const response = await fetch(url, init);
    const setCookies = response.headers.getSetCookie();
    this.jar.store(url, setCookies);
    const location = response.headers.get('location');
    return {
      url: String(url),
      status: response.status,
      location: location === null ? undefined : new URL(location, url).href,
      setCookies,
      headers: response.headers,
      html: await response.text(),
    };
  }

  get(url, options) {
    return this.request(url, options);
  }

  post(url, form) {
    return this.request(url, { form });
  }
}

const NAMED_REFERENCES = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'",
};

/**
 * Decodes character references in an attribute value, as a browser does: minijinja escapes `/`
 * as `&#x2f;`, handlebars (saml-idp's pages) `=` as `&#x3D;`. One pass, so `&amp;lt;` stays `&lt;`.
 */
function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (reference, name) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X'
        ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : reference;
    }
    return NAMED_REFERENCES[name.toLowerCase()] ?? reference;
  });
}

function attributesOf(tagContent) {
  const attributes = {};
  const re = /([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of tagContent.matchAll(re)) {
    attributes[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attributes;
}

/** The attributes of every `<tag>` in `html`. */
export function elements(html, tag) {
  return [...html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'))].map((m) => attributesOf(m[1]));
}

/** Every form of the page: its id, absolute action, method, hidden fields, inputs and buttons. */
export function forms(page) {
  return [...page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const attributes = attributesOf(m[1]);
    const inputs = elements(m[2], 'input');
    const hidden = Object.fromEntries(
      inputs.filter((i) => i.type === 'hidden' && i.name).map((i) => [i.name, i.value ?? '']),
    );
    return {
      id: attributes.id,
      action: new URL(attributes.action ?? '', page.url).href,
      method: (attributes.method ?? 'get').toLowerCase(),
      hidden,
      inputs,
      buttons: elements(m[2], 'button'),
    };
  });
}

/** The form with the given id. */
export function formById(page, id) {
  return forms(page).find((f) => f.id === id);
}

/**
 * Follows redirects (GET) while `follow(location)` says so, as a browser follows them on its
 * own; returns the first response that is not such a redirect.
 */
export async function followRedirects(browser, response, follow, limit = 10) {
  let r = response;
  for (let hops = 0; [301, 302, 303].includes(r.status) && r.location && follow(r.location); hops += 1) {
    if (hops === limit) throw new Error(`more than ${limit} redirects, the last to ${r.location}`);
    r = await browser.get(r.location);
  }
  return r;
}

/** A redirect to the client, taken as openid-client's `currentUrl`. */
export function isRedirectTo(response, redirectUri) {
  return response.status === 303 && response.location?.startsWith(`${redirectUri}?`);
}

export function describeResponse(r) {
  const body = r.html.replace(/\s+/g, ' ').slice(0, 300);
  return `status ${r.status}, Location ${JSON.stringify(r.location)}, body ${JSON.stringify(body)}`;
}
