//! Server-rendered pages for the interactive sign-in flow: login, TOTP, consent, logout, errors,
//! the application portal and the OAuth 2.0 Form Post Response Mode page.
//!
//! Default templates live in `src/ui/templates/` and are embedded in the binary; a tenant may override
//! any of them by file name from a directory on disk ([`Branding::templates_dir`]). Every value reaches
//! the HTML through minijinja with HTML auto-escaping, and every response carries a fresh CSP nonce
//! that every inline `<style>` (and, for form_post, the single inline `<script>`) must present.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::{AutoEscape, Environment, Value, context};
use serde::{Deserialize, Serialize};

use crate::secrets::log_tag;

const DEFAULT_PRIMARY_COLOR: &str = "#1f4fd1";
const DEFAULT_BACKGROUND_COLOR: &str = "#f4f6fb";
const DEFAULT_TEXT_COLOR: &str = "#1b2230";

/// The embedded default templates, by the file name a tenant override must use.
const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("totp.html", include_str!("templates/totp.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("logged_out.html", include_str!("templates/logged_out.html")),
    ("error.html", include_str!("templates/error.html")),
    ("form_post.html", include_str!("templates/form_post.html")),
    ("device.html", include_str!("templates/device.html")),
    (
        "device_done.html",
        include_str!("templates/device_done.html"),
    ),
    ("approvals.html", include_str!("templates/approvals.html")),
    ("portal.html", include_str!("templates/portal.html")),
];

/// Served when a template fails at render time (only possible with a broken tenant override that
/// slipped past the trial render in [`Pages::new`]). Static, so it cannot fail itself.
const FALLBACK_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Error</title></head>\
<body><h1>Something went wrong</h1><p>This page could not be displayed. Please try again later.</p>\
</body></html>\n";
const FALLBACK_CSP: &str = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Per-tenant look, stored inside the tenant's runtime spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branding {
    /// Tenant display name, shown as the page heading.
    pub display_name: String,
    /// An `https:` URL or a `data:image/…` URL; shown if set.
    pub logo_url: Option<String>,
    /// CSS colour for buttons and links.
    #[serde(default = "default_primary_color")]
    pub primary_color: String,
    #[serde(default = "default_background_color")]
    pub background_color: String,
    #[serde(default = "default_text_color")]
    pub text_color: String,
    /// Directory (absolute path, already resolved by the caller) with override templates, e.g. `login.html`.
    pub templates_dir: Option<PathBuf>,
}

fn default_primary_color() -> String {
    DEFAULT_PRIMARY_COLOR.to_owned()
}
fn default_background_color() -> String {
    DEFAULT_BACKGROUND_COLOR.to_owned()
}
fn default_text_color() -> String {
    DEFAULT_TEXT_COLOR.to_owned()
}

impl Branding {
    pub fn new(display_name: impl Into<String>) -> Self {
        Branding {
            display_name: display_name.into(),
            logo_url: None,
            primary_color: default_primary_color(),
            background_color: default_background_color(),
            text_color: default_text_color(),
            templates_dir: None,
        }
    }
}

/// True for `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa` or a colour keyword made of ASCII letters only.
///
/// Colours are interpolated into a `<style>` block, where HTML escaping does not stop CSS injection
/// (`red;}body{…}`), so this deliberately accepts nothing with punctuation, quotes or functions.
pub fn is_css_color(s: &str) -> bool {
    match s.strip_prefix('#') {
        Some(hex) => {
            matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        // The longest named colour ("lightgoldenrodyellow") has 20 letters.
        None => (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic()),
    }
}

/// Every page the provider renders. Field values are plain text; the templates escape everything.
#[derive(Debug, Serialize)]
#[serde(tag = "page")]
pub enum Page {
    Login(LoginPage),
    Totp(TotpPage),
    Consent(ConsentPage),
    LogoutConfirm(LogoutConfirmPage),
    LoggedOut(LoggedOutPage),
    Error(ErrorPage),
    /// OAuth 2.0 Form Post Response Mode: an auto-submitting form to the client.
    FormPost(FormPostPage),
    /// RFC 8628 §3.3: where the user enters a device's code.
    DeviceCode(DeviceCodePage),
    /// RFC 8628 §3.3: the device sign-in ended; back to the device.
    DeviceDone(DeviceDonePage),
    /// CIBA: the requests waiting for the signed-in user (or the one a link names).
    Approvals(ApprovalsPage),
    /// The application portal: what the signed-in user can start from here.
    Portal(PortalPage),
}

impl Page {
    /// The template file that renders this page (and the name a tenant override must use).
    fn template_name(&self) -> &'static str {
        match self {
            Page::Login(_) => "login.html",
            Page::Totp(_) => "totp.html",
            Page::Consent(_) => "consent.html",
            Page::LogoutConfirm(_) => "logout.html",
            Page::LoggedOut(_) => "logged_out.html",
            Page::Error(_) => "error.html",
            Page::FormPost(_) => "form_post.html",
            Page::DeviceCode(_) => "device.html",
            Page::DeviceDone(_) => "device_done.html",
            Page::Approvals(_) => "approvals.html",
            Page::Portal(_) => "portal.html",
        }
    }
}

#[derive(Serialize)]
pub struct LoginPage {
    pub action: String,
    pub interaction: String,
    pub csrf: String,
    /// Prefill; may be empty.
    pub username: String,
    pub client_name: String,
    pub error: Option<String>,
    /// Human text like "in 4 minutes" when sign-in is throttled.
    pub locked_until: Option<String>,
    /// Whether the username/password form is offered.
    pub local: bool,
    /// Upstream providers to sign in with.
    pub providers: Vec<ProviderButton>,
}

#[derive(Serialize, Debug, Clone)]
pub struct ProviderButton {
    pub name: String,
    pub url: String,
}

impl fmt::Debug for LoginPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginPage")
            .field("action", &self.action)
            .field("interaction", &log_tag(&self.interaction))
            .field("username", &self.username)
            .field("client_name", &self.client_name)
            .field("error", &self.error)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
pub struct TotpPage {
    pub action: String,
    pub interaction: String,
    pub csrf: String,
    pub username: String,
    pub error: Option<String>,
}

impl fmt::Debug for TotpPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpPage")
            .field("action", &self.action)
            .field("interaction", &log_tag(&self.interaction))
            .field("username", &self.username)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
pub struct ConsentPage {
    pub action: String,
    pub interaction: String,
    pub csrf: String,
    pub client_name: String,
    /// Shown as a link only if it is an http(s) URL.
    pub client_uri: Option<String>,
    pub identity_scopes: Vec<ScopeLine>,
    pub api_scopes: Vec<ScopeLine>,
    /// API resource display names.
    pub resources: Vec<String>,
    pub allow_remember: bool,
    /// RFC 8628 §5.4: a device is asking; the page says so.
    pub device: bool,
    /// The host of a client known only by its metadata document's URL: the one thing about it
    /// that is verified, shown prominently.
    pub client_host: Option<String>,
}

impl fmt::Debug for ConsentPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentPage")
            .field("action", &self.action)
            .field("interaction", &log_tag(&self.interaction))
            .field("client_name", &self.client_name)
            .field("client_uri", &self.client_uri)
            .field("identity_scopes", &self.identity_scopes)
            .field("api_scopes", &self.api_scopes)
            .field("resources", &self.resources)
            .field("allow_remember", &self.allow_remember)
            .field("device", &self.device)
            .field("client_host", &self.client_host)
            .finish_non_exhaustive()
    }
}

/// RFC 8628 §3.3: the code entry form (prefilled from `verification_uri_complete`, §3.3.1).
#[derive(Serialize)]
pub struct DeviceCodePage {
    pub action: String,
    pub csrf: String,
    /// What the user typed (or the link carried), shown back in the field.
    pub user_code: String,
    pub error: Option<String>,
}

/// The code is a credential while it lives: never in a log.
impl fmt::Debug for DeviceCodePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodePage")
            .field("action", &self.action)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// CIBA: requests a user may approve or deny.
#[derive(Serialize)]
pub struct ApprovalsPage {
    pub action: String,
    pub csrf: String,
    /// False: nobody is signed in and no link named a request.
    pub signed_in: bool,
    pub requests: Vec<ApprovalItem>,
}

impl fmt::Debug for ApprovalsPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalsPage")
            .field("requests", &self.requests.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
pub struct ApprovalItem {
    /// The request's id on this page (the hash of its `auth_req_id`).
    pub id: String,
    pub client_name: String,
    pub username: String,
    pub binding_message: Option<String>,
    pub scopes: Vec<ScopeLine>,
    pub minutes_left: i64,
}

/// The application portal (Duende's client application portal, plus SAML SPs).
#[derive(Serialize)]
pub struct PortalPage {
    /// Where a SAML application's form is posted.
    pub action: String,
    /// Echoed by those forms.
    pub csrf: String,
    /// Who is signed in.
    pub user: String,
    /// Where signing out starts.
    pub sign_out: String,
    pub apps: Vec<PortalApp>,
}

impl fmt::Debug for PortalPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalPage")
            .field("action", &self.action)
            .field("apps", &self.apps)
            .finish_non_exhaustive()
    }
}

/// One application on the portal.
#[derive(Debug, Serialize)]
pub struct PortalApp {
    pub name: String,
    /// Shown in place of a logo: the name's first letter.
    pub initial: String,
    /// Only an https or image data: URL (else no logo).
    pub logo_url: Option<String>,
    #[serde(flatten)]
    pub launch: Launch,
}

impl PortalApp {
    pub fn new(name: &str, logo_url: Option<&str>, launch: Launch) -> Self {
        Self {
            name: name.to_string(),
            initial: name
                .chars()
                .find(|c| c.is_alphanumeric())
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_else(|| "?".into()),
            logo_url: logo_url.filter(|u| is_logo_url(u)).map(str::to_string),
            launch,
        }
    }
}

/// How an application on the portal is started.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Launch {
    /// OIDC Core §4: a link to the client's `initiate_login_uri` (with `iss`, `target_link_uri`).
    Link { href: String },
    /// SAML profiles §4.1.5: a form that asks this server for an unsolicited Response to `sp`.
    Saml { sp: String },
}

#[derive(Debug, Serialize)]
pub struct DeviceDonePage {
    pub client_name: String,
    pub approved: bool,
    /// The device authorization ended before the decision (expired or already decided).
    pub expired: bool,
    /// A backchannel (CIBA) request, not a device: the user goes back to the application.
    pub backchannel: bool,
}

#[derive(Debug, Serialize)]
pub struct ScopeLine {
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
}

#[derive(Serialize)]
pub struct LogoutConfirmPage {
    pub action: String,
    pub logout_id: String,
    pub csrf: String,
    pub client_name: Option<String>,
}

impl fmt::Debug for LogoutConfirmPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoutConfirmPage")
            .field("action", &self.action)
            .field("logout_id", &log_tag(&self.logout_id))
            .field("client_name", &self.client_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
pub struct LoggedOutPage {
    /// OpenID Connect Front-Channel Logout 1.0 §2: one hidden iframe per RP `frontchannel_logout_uri`.
    pub frontchannel_urls: Vec<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub client_name: Option<String>,
    /// OIDC RP-Initiated Logout 1.0 §3: go back to `post_logout_redirect_uri` on its own, once
    /// the front-channel iframes have loaded (a script with the page's nonce; the link stays as
    /// the way back without JavaScript). Set only for a validated post-logout redirect URI.
    pub return_automatically: bool,
}

#[derive(Debug, Serialize)]
pub struct ErrorPage {
    pub error: String,
    pub description: String,
    pub request_id: String,
}

#[derive(Serialize)]
pub struct FormPostPage {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

/// The field values are a code, tokens or state: only their names are shown.
impl fmt::Debug for FormPostPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("FormPostPage")
            .field("action", &self.action)
            .field("fields", &names)
            .finish_non_exhaustive()
    }
}

/// What templates see as `branding`: the look without the on-disk path, and the logo only if safe.
#[derive(Serialize)]
struct BrandingView<'a> {
    display_name: &'a str,
    logo_url: Option<&'a str>,
    primary_color: &'a str,
    background_color: &'a str,
    text_color: &'a str,
}

/// Renders pages for one tenant. Built once per tenant (when its config loads), shared by requests.
pub struct Pages {
    /// The compiled templates: the one shared built-in set, or the tenant's own with overrides.
    env: Arc<Environment<'static>>,
    branding: Value,
    display_name: String,
    /// Template name → override file it was loaded from.
    overrides: BTreeMap<&'static str, PathBuf>,
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("display_name", &self.display_name)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Pages {
    /// Loads the embedded defaults and, if `branding.templates_dir` is set, any `*.html` in it that
    /// overrides a default by file name. Every template is trial-rendered once with sample data, so a
    /// broken override (syntax error, unknown filter, missing parent) refuses the tenant at load time.
    /// Errors name the file.
    pub fn new(branding: &Branding) -> Result<Pages, String> {
        for (field, value) in [
            ("primary_color", &branding.primary_color),
            ("background_color", &branding.background_color),
            ("text_color", &branding.text_color),
        ] {
            if !is_css_color(value) {
                return Err(format!(
                    "branding {field} {value:?} is not a CSS colour (#rgb, #rrggbb, #rrggbbaa or a colour name)"
                ));
            }
        }

        let found = match &branding.templates_dir {
            Some(dir) => read_overrides(dir)?,
            None => BTreeMap::new(),
        };
        let (env, overrides) = if found.is_empty() {
            // The built-in set is compiled and trial-rendered once per process, not per tenant:
            // branding is data of the render, not part of the templates.
            let env = BUILT_IN.as_ref().map_err(Clone::clone)?;
            (env.clone(), BTreeMap::new())
        } else {
            let (env, overrides) = environment(found)?;
            (Arc::new(env), overrides)
        };
        let view = BrandingView {
            display_name: &branding.display_name,
            logo_url: branding.logo_url.as_deref().filter(|u| is_logo_url(u)),
            primary_color: &branding.primary_color,
            background_color: &branding.background_color,
            text_color: &branding.text_color,
        };
        let pages = Pages {
            env,
            branding: Value::from_serialize(&view),
            display_name: branding.display_name.clone(),
            overrides,
        };
        if !pages.overrides.is_empty() {
            pages.trial_render()?;
        }
        Ok(pages)
    }

    /// The built-in templates with the default look, for when a tenant's own set cannot be built.
    /// Never fails: should even the built-ins not load (the unit tests prove they do), every page
    /// renders as the static fallback error page.
    pub fn fallback() -> Pages {
        let branding = Branding::new("Sign in");
        Pages::new(&branding).unwrap_or_else(|e| {
            tracing::error!(error = %e, "built-in page templates unusable");
            Pages {
                env: Arc::new(Environment::empty()),
                branding: Value::UNDEFINED,
                display_name: branding.display_name,
                overrides: BTreeMap::new(),
            }
        })
    }

    /// Renders a page into a complete response with its own CSP nonce.
    pub fn render(&self, page: &Page, status: StatusCode) -> Response {
        let nonce = URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<16>());
        match self.render_html(page, &nonce) {
            Ok(html) => html_response(status, html, &content_security_policy(page, &nonce)),
            Err(e) => {
                tracing::error!(
                    tenant = %self.display_name,
                    template = page.template_name(),
                    error = %e,
                    "page template failed to render"
                );
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    FALLBACK_HTML.to_owned(),
                    FALLBACK_CSP,
                )
            }
        }
    }

    fn render_html(&self, page: &Page, nonce: &str) -> Result<String, minijinja::Error> {
        let ctx = context! {
            nonce => nonce,
            branding => self.branding.clone(),
            ..Value::from_serialize(page)
        };
        self.env.get_template(page.template_name())?.render(ctx)
    }

    /// Renders every page once with sample values, so that errors only visible at render time
    /// (an `extends` of a missing template, an unknown filter) surface while the config loads.
    fn trial_render(&self) -> Result<(), String> {
        for page in sample_pages() {
            let name = page.template_name();
            self.render_html(&page, "trial").map_err(|e| {
                let file = match self.overrides.get(name) {
                    Some(path) => format!("template override {}", path.display()),
                    None => format!("template {name}"),
                };
                format!("{file} failed to render: {e}")
            })?;
        }
        Ok(())
    }
}

/// The built-in templates, compiled and trial-rendered once: what every tenant without
/// overrides renders with.
static BUILT_IN: LazyLock<Result<Arc<Environment<'static>>, String>> = LazyLock::new(|| {
    let (env, _) = environment(BTreeMap::new())?;
    let pages = Pages {
        env: Arc::new(env),
        branding: Value::from_serialize(BrandingView {
            display_name: "Sign in",
            logo_url: None,
            primary_color: "#000",
            background_color: "#fff",
            text_color: "#000",
        }),
        display_name: "built-in".into(),
        overrides: BTreeMap::new(),
    };
    pages.trial_render()?;
    Ok(pages.env)
});

/// An environment with the built-in templates, each replaced by its override in `found`
/// (template name → file and source); and which templates were overridden, from which file.
#[allow(clippy::type_complexity)]
fn environment(
    mut found: BTreeMap<&'static str, (PathBuf, String)>,
) -> Result<(Environment<'static>, BTreeMap<&'static str, PathBuf>), String> {
    // `new` (builtin filters and tests, for tenant overrides) is deprecated in minijinja 2.x
    // builds without the `serde` cargo feature, which only exists to silence this warning;
    // adding "serde" to minijinja's features in Cargo.toml makes this `allow` unnecessary.
    #[allow(deprecated)]
    let mut env = Environment::new();
    // Escape everything, whatever a template is called.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_test("web_url", |v: &Value| {
        v.as_str().and_then(web_origin).is_some()
    });
    env.add_test("navigable_url", |v: &Value| {
        v.as_str().is_some_and(is_navigable_url)
    });
    let mut overrides = BTreeMap::new();
    for (name, default) in TEMPLATES {
        match found.remove(name) {
            Some((path, source)) => {
                env.add_template_owned(name, source)
                    .map_err(|e| format!("template override {}: {e}", path.display()))?;
                overrides.insert(name, path);
            }
            None => env
                .add_template(name, default)
                .map_err(|e| format!("built-in template {name}: {e}"))?,
        }
    }
    Ok((env, overrides))
}

/// Reads the override files in `dir` whose names match a default template.
fn read_overrides(dir: &Path) -> Result<BTreeMap<&'static str, (PathBuf, String)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read templates directory {}: {e}", dir.display()))?;
    let mut found = BTreeMap::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("cannot read templates directory {}: {e}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "html") || !path.is_file() {
            continue;
        }
        let known = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| TEMPLATES.iter().find(|(name, _)| *name == n));
        let Some(&(name, _)) = known else {
            tracing::warn!(file = %path.display(), "ignoring template override with an unknown name");
            continue;
        };
        let source = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read template override {}: {e}", path.display()))?;
        found.insert(name, (path, source));
    }
    Ok(found)
}

fn html_response(status: StatusCode, html: String, csp: &str) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    let csp = HeaderValue::from_str(csp).unwrap_or_else(|_| {
        // Unreachable: nonces are base64url and origins are filtered by `web_origin`.
        tracing::error!("content security policy is not a valid header value");
        HeaderValue::from_static(FALLBACK_CSP)
    });
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    response
}

fn content_security_policy(page: &Page, nonce: &str) -> String {
    let mut csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' https: data:; \
         base-uri 'none'; frame-ancestors 'none'"
    );
    match page {
        // The auto-submit script of the form_post page carries the nonce.
        Page::FormPost(_) => csp.push_str(&format!("; script-src 'nonce-{nonce}'")),
        // OpenID Connect Front-Channel Logout 1.0 §4: the OP renders the RPs' logout URIs in iframes.
        Page::LoggedOut(p) => {
            // The script that returns to the client once they have loaded carries the nonce
            // (the same condition as in logged_out.html).
            if p.return_automatically
                && p.post_logout_redirect_uri
                    .as_deref()
                    .is_some_and(is_navigable_url)
            {
                csp.push_str(&format!("; script-src 'nonce-{nonce}'"));
            }
            let mut origins: Vec<String> = Vec::new();
            for origin in p.frontchannel_urls.iter().filter_map(|u| web_origin(u)) {
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
            if !origins.is_empty() {
                csp.push_str("; frame-src ");
                csp.push_str(&origins.join(" "));
            }
        }
        _ => {}
    }
    csp
}

/// The origin (`scheme://host[:port]`) of an http(s) URL, if it is safe to place in a CSP header.
///
/// The URL parser accepts hosts with characters like `;` or `,`, which would split a CSP directive,
/// so the serialised origin is checked against the characters a real origin needs.
fn web_origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/' | b'[' | b']'))
        .then_some(origin)
}

/// A link target that cannot run script or read local data. Private-use schemes stay allowed:
/// native apps use them as post-logout redirect URIs (RFC 8252 §7.1).
fn is_navigable_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        !matches!(
            u.scheme(),
            "javascript" | "vbscript" | "data" | "file" | "blob" | "about" | "filesystem"
        )
    })
}

/// `https:` or an image `data:` URL (an `<img>` never runs script, even for SVG).
pub fn is_logo_url(url: &str) -> bool {
    url.get(..11)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:image/"))
        || url::Url::parse(url).is_ok_and(|u| u.scheme() == "https")
}

/// One page of each kind, with every optional part present, for the load-time trial render.
fn sample_pages() -> [Page; 11] {
    let scope = || ScopeLine {
        name: "profile".into(),
        display_name: "Your profile".into(),
        description: Some("Name and picture".into()),
    };
    [
        Page::Login(LoginPage {
            action: "/login".into(),
            interaction: "i".into(),
            csrf: "c".into(),
            username: "alice".into(),
            client_name: "Client".into(),
            error: Some("error".into()),
            locked_until: Some("in 1 minute".into()),
            local: true,
            providers: vec![ProviderButton {
                name: "Globex".into(),
                url: "/start".into(),
            }],
        }),
        Page::Totp(TotpPage {
            action: "/totp".into(),
            interaction: "i".into(),
            csrf: "c".into(),
            username: "alice".into(),
            error: Some("error".into()),
        }),
        Page::Consent(ConsentPage {
            action: "/consent".into(),
            interaction: "i".into(),
            csrf: "c".into(),
            client_name: "Client".into(),
            client_uri: Some("https://client.example/".into()),
            identity_scopes: vec![scope()],
            api_scopes: vec![scope()],
            resources: vec!["API".into()],
            allow_remember: true,
            device: true,
            client_host: Some("client.example".into()),
        }),
        Page::LogoutConfirm(LogoutConfirmPage {
            action: "/logout".into(),
            logout_id: "l".into(),
            csrf: "c".into(),
            client_name: Some("Client".into()),
        }),
        Page::LoggedOut(LoggedOutPage {
            frontchannel_urls: vec!["https://client.example/logout".into()],
            post_logout_redirect_uri: Some("https://client.example/".into()),
            client_name: Some("Client".into()),
            return_automatically: true,
        }),
        Page::Error(ErrorPage {
            error: "invalid_request".into(),
            description: "description".into(),
            request_id: "r".into(),
        }),
        Page::FormPost(FormPostPage {
            action: "https://client.example/cb".into(),
            fields: vec![("code".into(), "x".into())],
        }),
        Page::DeviceCode(DeviceCodePage {
            action: "/device".into(),
            csrf: "c".into(),
            user_code: "BCDF-GHJK".into(),
            error: Some("error".into()),
        }),
        Page::DeviceDone(DeviceDonePage {
            client_name: "Client".into(),
            approved: true,
            expired: false,
            backchannel: false,
        }),
        Page::Approvals(ApprovalsPage {
            action: "/approvals".into(),
            csrf: "c".into(),
            signed_in: true,
            requests: vec![ApprovalItem {
                id: "r".into(),
                client_name: "Client".into(),
                username: "alice".into(),
                binding_message: Some("X7-42".into()),
                scopes: vec![scope()],
                minutes_left: 4,
            }],
        }),
        Page::Portal(PortalPage {
            action: "/apps/launch".into(),
            csrf: "c".into(),
            user: "Alice".into(),
            sign_out: "/connect/endsession".into(),
            apps: vec![
                PortalApp::new(
                    "Web",
                    Some("https://client.example/logo.png"),
                    Launch::Link {
                        href: "https://client.example/login".into(),
                    },
                ),
                PortalApp::new(
                    "Wiki",
                    None,
                    Launch::Saml {
                        sp: "https://sp.example".into(),
                    },
                ),
            ],
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn pages() -> Pages {
        Pages::new(&Branding::new("Acme Corp")).unwrap()
    }

    async fn body_of(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn csp_of(headers: &axum::http::HeaderMap) -> String {
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn style_nonce(csp: &str) -> String {
        let rest = csp.split("style-src 'nonce-").nth(1).unwrap();
        rest.split('\'').next().unwrap().to_owned()
    }

    fn directive<'a>(csp: &'a str, name: &str) -> Option<&'a str> {
        csp.split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name).map(str::trim))
    }

    fn login(username: &str) -> Page {
        Page::Login(LoginPage {
            action: "/t/acme/login".into(),
            interaction: "int-123".into(),
            csrf: "csrf-secret-value".into(),
            username: username.into(),
            client_name: "Shop".into(),
            error: None,
            locked_until: None,
            local: true,
            providers: Vec::new(),
        })
    }

    async fn render(pages: &Pages, page: Page) -> (axum::http::HeaderMap, String) {
        let response = pages.render(&page, StatusCode::OK);
        let headers = response.headers().clone();
        (headers, body_of(response).await)
    }

    #[tokio::test]
    async fn a_username_with_markup_is_html_escaped() {
        let (_, body) = render(&pages(), login("<script>alert(1)</script>")).await;
        assert!(body.contains("&lt;script&gt;alert(1)&lt;"), "{body}");
        assert!(!body.contains("<script>alert(1)"));
    }

    #[tokio::test]
    async fn every_page_renders_with_its_status_and_a_csp_nonce_matching_the_style_tag() {
        let pages = pages();
        for page in sample_pages() {
            let name = page.template_name();
            let response = pages.render(&page, StatusCode::IM_A_TEAPOT);
            assert_eq!(response.status(), StatusCode::IM_A_TEAPOT, "{name}");
            let h = response.headers();
            assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
            assert_eq!(h[header::PRAGMA], "no-cache");
            let csp = csp_of(response.headers());
            assert!(
                csp.starts_with("default-src 'none'; style-src 'nonce-"),
                "{csp}"
            );
            assert!(csp.contains("img-src 'self' https: data:"), "{csp}");
            assert!(csp.contains("base-uri 'none'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            let nonce = style_nonce(&csp);
            assert_eq!(nonce.len(), 22, "16 bytes in base64url without padding");
            let body = body_of(response).await;
            assert!(
                body.contains(&format!("<style nonce=\"{nonce}\">")),
                "{name}"
            );
            assert!(body.contains("<meta name=\"viewport\""), "{name}");
            assert!(body.contains("<h1>Acme Corp</h1>"), "{name}");
        }
    }

    #[tokio::test]
    async fn the_portal_escapes_names_shows_only_safe_logos_and_keeps_its_token_out_of_debug() {
        let page = Page::Portal(PortalPage {
            action: "/apps/launch".into(),
            csrf: "csrf-secret-value".into(),
            user: "Alice".into(),
            sign_out: "/connect/endsession".into(),
            apps: vec![
                PortalApp::new(
                    "<img src=x onerror=alert(1)>",
                    Some("javascript:alert(1)"),
                    Launch::Saml {
                        sp: "https://sp.example/\"><script>".into(),
                    },
                ),
                PortalApp::new(
                    "Web",
                    Some("data:image/png;base64,AAAA"),
                    Launch::Link {
                        href: "https://web.example/login".into(),
                    },
                ),
                PortalApp::new(
                    "Scripted",
                    None,
                    Launch::Link {
                        href: "javascript:alert(1)".into(),
                    },
                ),
            ],
        });
        assert!(!format!("{page:?}").contains("csrf-secret-value"));
        let (_, body) = render(&pages(), page).await;
        assert!(
            body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{body}"
        );
        assert!(
            !body.contains("<script>") && !body.contains("javascript:"),
            "{body}"
        );
        assert!(
            body.contains("src=\"data:image&#x2f;png;base64,AAAA\""),
            "{body}"
        );
        // A link that is not navigable is not shown at all.
        assert_eq!(body.matches("data-kind=\"oidc\"").count(), 1, "{body}");
        assert!(!body.contains("Scripted"), "{body}");
        assert!(
            body.contains("name=\"csrf\" value=\"csrf-secret-value\""),
            "{body}"
        );
    }

    #[test]
    fn the_nonce_differs_between_two_renders() {
        let pages = pages();
        let a = style_nonce(&csp_of(pages.render(&login("a"), StatusCode::OK).headers()));
        let b = style_nonce(&csp_of(pages.render(&login("a"), StatusCode::OK).headers()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn only_form_post_allows_a_script_and_it_carries_the_hidden_fields() {
        let pages = pages();
        let page = Page::FormPost(FormPostPage {
            action: "https://rp.example/cb".into(),
            fields: vec![
                ("code".into(), "abc\"><x".into()),
                ("state".into(), "s1".into()),
            ],
        });
        let (response, body) = render(&pages, page).await;
        let csp = csp_of(&response);
        let nonce = style_nonce(&csp);
        assert_eq!(
            directive(&csp, "script-src"),
            Some(format!("'nonce-{nonce}'").as_str())
        );
        assert!(
            body.contains(&format!("<script nonce=\"{nonce}\">")),
            "{body}"
        );
        assert!(
            body.contains("action=\"https:&#x2f;&#x2f;rp.example&#x2f;cb\""),
            "{body}"
        );
        assert!(
            body.contains("<input type=\"hidden\" name=\"code\" value=\"abc&quot;&gt;&lt;x\">")
        );
        assert!(body.contains("<input type=\"hidden\" name=\"state\" value=\"s1\">"));
        assert!(body.contains("<noscript>"));

        let (login, _) = render(&pages, login("a")).await;
        assert_eq!(directive(&csp_of(&login), "script-src"), None);
    }

    #[tokio::test]
    async fn logged_out_frame_src_lists_exactly_the_front_channel_origins() {
        let page = Page::LoggedOut(LoggedOutPage {
            frontchannel_urls: vec![
                "https://rp1.example/logout?sid=1".into(),
                "https://rp1.example/other".into(),
                "http://rp2.example:8080/fc".into(),
                "not a url".into(),
                "javascript:alert(1)".into(),
                "https://a;script-src.example/".into(),
            ],
            post_logout_redirect_uri: Some("https://rp1.example/bye".into()),
            client_name: Some("Shop".into()),
            return_automatically: false,
        });
        let (response, body) = render(&pages(), page).await;
        assert_eq!(
            directive(&csp_of(&response), "frame-src"),
            Some("https://rp1.example http://rp2.example:8080")
        );
        assert_eq!(body.matches("<iframe").count(), 3, "{body}");
        assert!(body.contains("src=\"https:&#x2f;&#x2f;rp1.example&#x2f;logout?sid=1\""));
        assert!(!body.contains("javascript:"));
        assert!(body.contains("You are signed out"));
        assert!(body.contains("Return to Shop"));
        assert!(!body.contains("http-equiv"));
    }

    #[tokio::test]
    async fn logged_out_without_front_channel_urls_has_no_frame_src_and_no_return_link() {
        let page = Page::LoggedOut(LoggedOutPage {
            frontchannel_urls: vec![],
            post_logout_redirect_uri: Some("javascript:alert(1)".into()),
            client_name: None,
            return_automatically: true,
        });
        let (response, body) = render(&pages(), page).await;
        assert_eq!(directive(&csp_of(&response), "frame-src"), None);
        assert_eq!(directive(&csp_of(&response), "script-src"), None);
        assert!(!body.contains("<iframe"));
        assert!(!body.contains("Return to"));
        assert!(!body.contains("javascript"));
        assert!(!body.contains("<script"));
    }

    #[tokio::test]
    async fn logged_out_returning_on_its_own_has_one_script_allowed_only_by_its_nonce() {
        let page = |return_automatically| {
            Page::LoggedOut(LoggedOutPage {
                frontchannel_urls: vec!["https://rp1.example/logout?sid=1".into()],
                post_logout_redirect_uri: Some("https://rp1.example/bye?state=s".into()),
                client_name: Some("Shop".into()),
                return_automatically,
            })
        };
        let (response, body) = render(&pages(), page(true)).await;
        let csp = csp_of(&response);
        let nonce = style_nonce(&csp);
        assert_eq!(
            directive(&csp, "script-src"),
            Some(format!("'nonce-{nonce}'").as_str())
        );
        assert_eq!(body.matches("<script").count(), 1, "{body}");
        assert!(
            body.contains(&format!("<script nonce=\"{nonce}\">")),
            "{body}"
        );
        assert!(body.contains("window.location.replace(back)"), "{body}");
        assert!(
            body.contains("id=\"return\""),
            "the link stays for no JavaScript"
        );
        assert_eq!(body.matches("<iframe").count(), 1, "{body}");

        let (response, body) = render(&pages(), page(false)).await;
        assert_eq!(directive(&csp_of(&response), "script-src"), None);
        assert!(!body.contains("<script"), "{body}");
        assert!(body.contains("id=\"return\""));
    }

    #[tokio::test]
    async fn a_tenant_override_template_in_a_directory_replaces_login_html() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("login.html"),
            "{% extends \"base.html\" %}{% block content %}<p id=\"custom\">Hi {{ username }}</p>{% endblock %}",
        )
        .unwrap();
        std::fs::write(dir.path().join("unknown.html"), "ignored {% broken").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let mut branding = Branding::new("Acme");
        branding.templates_dir = Some(dir.path().to_path_buf());
        let pages = Pages::new(&branding).unwrap();
        let (_, body) = render(&pages, login("<b>")).await;
        assert!(body.contains("<p id=\"custom\">Hi &lt;b&gt;</p>"), "{body}");
        assert!(!body.contains("login-form"));
        assert!(
            body.contains("<style nonce="),
            "the default base.html still applies"
        );
    }

    #[test]
    fn a_syntax_error_in_an_override_is_reported_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("consent.html");
        std::fs::write(&file, "{% if client_name %}unclosed").unwrap();
        let mut branding = Branding::new("Acme");
        branding.templates_dir = Some(dir.path().to_path_buf());
        let error = Pages::new(&branding).unwrap_err();
        assert!(error.contains(&file.display().to_string()), "{error}");
    }

    #[test]
    fn an_override_that_fails_only_when_rendered_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("error.html");
        std::fs::write(&file, "{% extends \"missing.html\" %}").unwrap();
        let mut branding = Branding::new("Acme");
        branding.templates_dir = Some(dir.path().to_path_buf());
        let error = Pages::new(&branding).unwrap_err();
        assert!(error.contains(&file.display().to_string()), "{error}");
    }

    #[test]
    fn a_missing_templates_directory_is_reported_with_its_path() {
        let mut branding = Branding::new("Acme");
        branding.templates_dir = Some(PathBuf::from("/nonexistent/portcullis-templates"));
        let error = Pages::new(&branding).unwrap_err();
        assert!(
            error.contains("/nonexistent/portcullis-templates"),
            "{error}"
        );
    }

    #[test]
    fn is_css_color_accepts_hex_and_names_and_rejects_anything_that_could_escape_the_style() {
        for ok in [
            "#1f4fd1",
            "#fff",
            "#FFFA",
            "#1f4fd1cc",
            "navy",
            "RebeccaPurple",
        ] {
            assert!(is_css_color(ok), "{ok}");
        }
        for bad in [
            "red;}body{x:y",
            "url(x)",
            "\"red\"",
            "'red'",
            "",
            "#",
            "#12345",
            "#ggg",
            "rgb(1,2,3)",
            "red </style>",
            "navy ",
        ] {
            assert!(!is_css_color(bad), "{bad}");
        }
    }

    #[test]
    fn pages_refuse_a_branding_colour_that_is_not_a_css_colour() {
        let mut branding = Branding::new("Acme");
        branding.primary_color = "red;}body{display:none".into();
        let error = Pages::new(&branding).unwrap_err();
        assert!(error.contains("primary_color"), "{error}");
    }

    #[tokio::test]
    async fn branding_colours_and_a_safe_logo_reach_the_page() {
        let mut branding = Branding::new("Acme");
        branding.primary_color = "#aa0000".into();
        branding.background_color = "white".into();
        branding.logo_url = Some("https://cdn.example/logo.png".into());
        let (_, body) = render(&Pages::new(&branding).unwrap(), login("a")).await;
        assert!(body.contains("--primary: #aa0000;"));
        assert!(body.contains("--background: white;"));
        assert!(body.contains("<img src=\"https:&#x2f;&#x2f;cdn.example&#x2f;logo.png\""));

        branding.logo_url = Some("javascript:alert(1)".into());
        let (_, body) = render(&Pages::new(&branding).unwrap(), login("a")).await;
        assert!(!body.contains("<img"));
    }

    #[tokio::test]
    async fn login_and_totp_forms_use_the_expected_field_names_and_autocomplete() {
        let pages = pages();
        let (_, body) = render(&pages, login("alice")).await;
        for needle in [
            "<form id=\"login-form\" method=\"post\" action=\"&#x2f;t&#x2f;acme&#x2f;login\">",
            "name=\"interaction\" value=\"int-123\"",
            "name=\"csrf\" value=\"csrf-secret-value\"",
            "id=\"username\" name=\"username\" type=\"text\" value=\"alice\" autocomplete=\"username\"",
            "id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\"",
            "<label for=\"username\">",
            "<label for=\"password\">",
            "continue to <strong>Shop</strong>",
        ] {
            assert!(body.contains(needle), "{needle}\n{body}");
        }

        let page = Page::Totp(TotpPage {
            action: "/t/acme/totp".into(),
            interaction: "int-123".into(),
            csrf: "csrf-secret-value".into(),
            username: "alice".into(),
            error: Some("That code did not work.".into()),
        });
        let (_, body) = render(&pages, page).await;
        for needle in [
            "id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\"",
            "name=\"interaction\" value=\"int-123\"",
            "name=\"csrf\" value=\"csrf-secret-value\"",
            "role=\"alert\"",
            "That code did not work.",
        ] {
            assert!(body.contains(needle), "{needle}\n{body}");
        }
    }

    #[tokio::test]
    async fn a_throttled_login_says_when_to_try_again() {
        let Page::Login(mut page) = login("alice") else {
            unreachable!()
        };
        page.locked_until = Some("in 4 minutes".into());
        let (_, body) = render(&pages(), Page::Login(page)).await;
        assert!(body.contains("try again in 4 minutes"), "{body}");
    }

    fn consent(allow_remember: bool, client_uri: &str) -> Page {
        Page::Consent(ConsentPage {
            action: "/t/acme/consent".into(),
            interaction: "int-9".into(),
            csrf: "csrf-9".into(),
            client_name: "Shop".into(),
            client_uri: Some(client_uri.into()),
            identity_scopes: vec![ScopeLine {
                name: "email".into(),
                display_name: "Your email address".into(),
                description: Some("So the shop can send receipts".into()),
            }],
            api_scopes: vec![ScopeLine {
                name: "orders.read".into(),
                display_name: "Read your orders".into(),
                description: None,
            }],
            resources: vec!["Orders API".into()],
            allow_remember,
            device: false,
            client_host: None,
        })
    }

    #[tokio::test]
    async fn consent_lists_scopes_in_plain_words_and_posts_a_decision() {
        let (_, body) = render(&pages(), consent(true, "https://shop.example/")).await;
        for needle in [
            "Your email address",
            "So the shop can send receipts",
            "Read your orders",
            "Orders API",
            "name=\"interaction\" value=\"int-9\"",
            "name=\"csrf\" value=\"csrf-9\"",
            "<input type=\"checkbox\" id=\"remember\" name=\"remember\" value=\"on\">",
            "Remember my decision",
            "id=\"allow\" name=\"decision\" value=\"allow\"",
            "id=\"deny\" name=\"decision\" value=\"deny\"",
            "href=\"https:&#x2f;&#x2f;shop.example&#x2f;\"",
        ] {
            assert!(body.contains(needle), "{needle}\n{body}");
        }
    }

    #[tokio::test]
    async fn consent_offers_remember_only_when_allowed_and_links_only_web_urls() {
        let (_, body) = render(&pages(), consent(false, "javascript:alert(1)")).await;
        assert!(!body.contains("name=\"remember\""));
        assert!(!body.contains("Remember my decision"));
        assert!(!body.contains("javascript"));
        assert!(body.contains("id=\"allow\""));
    }

    #[tokio::test]
    async fn logout_confirmation_posts_the_logout_id_and_csrf() {
        let page = Page::LogoutConfirm(LogoutConfirmPage {
            action: "/t/acme/logout".into(),
            logout_id: "lo-1".into(),
            csrf: "csrf-2".into(),
            client_name: Some("Shop".into()),
        });
        let (_, body) = render(&pages(), page).await;
        for needle in [
            "name=\"logout_id\" value=\"lo-1\"",
            "name=\"csrf\" value=\"csrf-2\"",
            "id=\"logout\" name=\"decision\" value=\"logout\"",
            "Shop",
        ] {
            assert!(body.contains(needle), "{needle}\n{body}");
        }
    }

    #[tokio::test]
    async fn the_error_page_shows_code_description_and_request_id() {
        let page = Page::Error(ErrorPage {
            error: "invalid_request".into(),
            description: "The redirect_uri is not registered.".into(),
            request_id: "req-42".into(),
        });
        let response = pages().render(&page, StatusCode::BAD_REQUEST);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_of(response).await;
        assert!(body.contains("invalid_request"));
        assert!(body.contains("The redirect_uri is not registered."));
        assert!(body.contains("req-42"));
        assert!(body.contains("Quote this request id if you contact support"));
    }

    #[test]
    fn debug_output_omits_csrf_tokens_and_form_post_values() {
        let shown = format!("{:?}", login("alice"));
        assert!(shown.contains("alice"));
        assert!(!shown.contains("csrf-secret-value"), "{shown}");
        assert!(!shown.contains("int-123"), "{shown}");
        let shown = format!("{:?}", consent(true, "https://shop.example/"));
        assert!(!shown.contains("csrf-9"), "{shown}");
        let form = FormPostPage {
            action: "https://rp.example/cb".into(),
            fields: vec![("code".into(), "secret-code".into())],
        };
        let shown = format!("{form:?}");
        assert!(
            shown.contains("code") && !shown.contains("secret-code"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn the_fallback_pages_render_with_the_built_in_templates() {
        let (headers, body) = render(&Pages::fallback(), login("alice")).await;
        assert!(body.contains("id=\"login-form\""), "{body}");
        assert!(csp_of(&headers).contains("style-src 'nonce-"));
    }

    #[tokio::test]
    async fn a_page_that_cannot_render_becomes_a_static_error_without_details() {
        let broken = Pages {
            env: Arc::new(Environment::empty()),
            branding: Value::UNDEFINED,
            display_name: "Acme".into(),
            overrides: BTreeMap::new(),
        };
        let response = broken.render(&login("alice"), StatusCode::OK);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(csp_of(response.headers()), FALLBACK_CSP);
        let body = body_of(response).await;
        assert!(body.contains("Something went wrong"));
        assert!(!body.contains("template"), "{body}");
    }

    #[test]
    fn pages_can_be_shared_between_request_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Pages>();
    }
}
