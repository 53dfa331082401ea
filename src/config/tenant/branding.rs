//! `display_name` and `[branding]`: how the tenant's pages look.

use super::{KeyPath, TenantFile};
use crate::config::FileRoots;
use crate::ui::Branding;

/// The display name and the checked branding (override templates are rendered once now).
pub(super) fn resolve(
    file: &TenantFile,
    files: &FileRoots,
    bad: &mut impl FnMut(KeyPath, String),
) -> (String, Branding) {
    let root = KeyPath::root();
    let display_name = file
        .display_name
        .clone()
        .unwrap_or_else(|| file.slug.clone());
    let mut branding = Branding::new(display_name.clone());
    let bk = root.key("branding");
    for (key, value, slot) in [
        (
            "primary_color",
            &file.branding.primary_color,
            &mut branding.primary_color,
        ),
        (
            "background_color",
            &file.branding.background_color,
            &mut branding.background_color,
        ),
        (
            "text_color",
            &file.branding.text_color,
            &mut branding.text_color,
        ),
    ] {
        if let Some(v) = value {
            if crate::ui::is_css_color(v) {
                *slot = v.clone();
            } else {
                bad(bk.key(key), format!("`{v}` is not a CSS colour"));
            }
        }
    }
    if let Some(logo) = &file.branding.logo_url {
        if logo.starts_with("https://") || logo.starts_with("data:image/") {
            branding.logo_url = Some(logo.clone());
        } else {
            bad(
                bk.key("logo_url"),
                "a logo is an https: or data:image/ URL".into(),
            );
        }
    }
    if let Some(dir) = &file.branding.templates {
        match files.resolve(dir) {
            Ok(path) => {
                branding.templates_dir = Some(path);
                // The override templates are loaded (and each page rendered once) now, so a
                // broken template rejects the file instead of breaking the login page later.
                if let Err(m) = crate::ui::Pages::new(&branding) {
                    bad(bk.key("templates"), m);
                }
            }
            Err(m) => bad(bk.key("templates"), m),
        }
    }
    (display_name, branding)
}
