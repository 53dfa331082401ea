//! The layers of src/ (docs/architecture.md): the endpoints sit on top, and nothing below them
//! imports from them — only the front door's router, which routes to them, and the crate root.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The paths in `text` that name the endpoints module: `crate::endpoints`, or `endpoints` inside
/// a `use crate::{…}` group.
fn names_endpoints(text: &str) -> bool {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    squeezed.contains("crate::endpoints")
        || squeezed.contains("crate:: endpoints")
        || squeezed.match_indices("use crate::{").any(|(i, _)| {
            let group = &squeezed[i..];
            let end = group.find("};").unwrap_or(group.len());
            group[..end]
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "endpoints")
        })
}

#[test]
fn nothing_below_the_endpoints_imports_from_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed = [src.join("lib.rs"), src.join("frontdoor/router.rs")];
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("endpoints")) && !allowed.contains(f))
        .filter(|f| names_endpoints(&std::fs::read_to_string(f).unwrap()))
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these modules below src/endpoints/ import from it: {offenders:?}"
    );
}

#[test]
fn the_layering_check_sees_an_import_of_the_endpoints() {
    assert!(names_endpoints("use crate::endpoints::account::Ctx;"));
    assert!(names_endpoints(
        "let x = crate::endpoints::federation::Answer::Redirect(u);"
    ));
    assert!(names_endpoints(
        "use crate::{\n    error::OAuthError,\n    endpoints::token,\n};"
    ));
    assert!(!names_endpoints(
        "// crate::endpoints in a comment\nuse crate::error::X;"
    ));
    assert!(!names_endpoints("use crate::{error, registry};"));
}

// What ships: the SAML test IdP, which forges signatures on request, is built for tests
// only (the `test-idp` feature). `scripts/test` builds the binary as shipped and fails when it
// finds the test IdP's marker in it; this test shows that the search can find the marker: the
// binary the tests start, built with the feature, carries it.
#[test]
fn the_binary_built_for_the_tests_carries_the_test_idp_marker_that_scripts_test_looks_for() {
    let marker = &portcullis::federation::saml::sp::test_idp::SHIPPED_MARKER;
    let binary = std::fs::read(env!("CARGO_BIN_EXE_portcullis")).unwrap();
    assert!(
        binary.windows(marker.len()).any(|w| w == marker),
        "the marker is not in {}",
        env!("CARGO_BIN_EXE_portcullis")
    );
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test"))
            .unwrap();
    assert!(
        script.contains("SHIPPED_MARKER"),
        "scripts/test looks for the marker"
    );
}
