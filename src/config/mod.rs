//! Configuration in two layers: strict file schemas (`deny_unknown_fields`) that
//! resolve into the runtime types the rest of the code uses.

pub mod client;
pub mod metadata;
pub mod runtime;
pub mod server;
pub mod tenant;

pub use client::Client;
pub use runtime::ServerConfig;
pub use tenant::{ClientSpec, TenantSpec};

use std::fmt;
use std::path::{Path, PathBuf};

/// One configuration problem, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A path into a TOML document, e.g. `clients[0].scopes`.
#[derive(Debug, Clone, Default)]
pub struct KeyPath(Vec<Seg>);

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        Self(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line at which `path` is written in `text`, if it is.
pub fn locate(text: &str, path: &KeyPath) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut span = doc.span();
    let mut current: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
    for seg in &path.0 {
        let next = match (seg, current) {
            (Seg::Key(k), None) => doc.get_ref().get(k.as_str()),
            (Seg::Key(k), Some(v)) => v.get_ref().get(k.as_str()),
            (Seg::Index(i), Some(v)) => v.get_ref().get(*i),
            (Seg::Index(_), None) => None,
        };
        match next {
            Some(v) => {
                span = v.span();
                current = Some(v);
            }
            None => break,
        }
    }
    Some(line_of(text, span.start))
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Turns a `toml` deserialization error into a located [`ConfigError`].
pub fn from_toml_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    // Unknown keys inside tables come without a span: find the key's line ourselves.
    let unknown_key_line = || {
        let key = e
            .message()
            .split("unknown field `")
            .nth(1)?
            .split('`')
            .next()?;
        text.lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|i| i + 1)
    };
    ConfigError {
        file: file.to_path_buf(),
        line: e
            .span()
            .map(|s| line_of(text, s.start))
            .or_else(unknown_key_line),
        key: String::new(),
        message: e.message().trim().to_string(),
    }
}

/// Where tenant and provider files may read files from: paths they name are relative to the
/// directory Portcullis runs in (or absolute), never contain `..`, and must lie — after
/// symbolic links are followed — under one of the allowed directories (tenants, providers,
/// certificates, and the operator's `[paths] extra_file_dirs`), and never under the data
/// directory (the master key and the database live there).
#[derive(Debug, Clone)]
pub struct FileRoots {
    base_dir: PathBuf,
    allowed: Vec<PathBuf>,
    forbidden: Vec<PathBuf>,
}

impl FileRoots {
    pub fn new(base_dir: PathBuf, allowed: Vec<PathBuf>, forbidden: Vec<PathBuf>) -> Self {
        let canon = |v: Vec<PathBuf>| v.iter().map(|p| canonical(p)).collect();
        Self {
            allowed: canon(allowed),
            forbidden: canon(forbidden),
            base_dir,
        }
    }

    /// Any file under `base_dir` (tests and tools that check a file on its own).
    pub fn under(base_dir: &Path) -> Self {
        Self::new(
            base_dir.to_path_buf(),
            vec![base_dir.to_path_buf()],
            Vec::new(),
        )
    }

    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The file `p` names, if a definition may read it.
    pub fn resolve(&self, p: &str) -> Result<PathBuf, String> {
        let path = Path::new(p);
        if p.is_empty() {
            return Err("the path is empty".into());
        }
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!("`{p}` may not contain `..`"));
        }
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        };
        let real = canonical(&full);
        if self.forbidden.iter().any(|f| real.starts_with(f)) {
            return Err(format!("`{p}` lies in the data directory"));
        }
        if !self.allowed.iter().any(|a| real.starts_with(a)) {
            return Err(format!(
                "`{p}` is outside the directories definitions may read (tenants, providers, certificates, [paths] extra_file_dirs)"
            ));
        }
        Ok(full)
    }

    /// Reads the text file `p` names (see [`FileRoots::resolve`]).
    pub fn read(&self, p: &str) -> Result<String, String> {
        let path = self.resolve(p)?;
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{p}`: {e}"))
    }
}

/// `p` with symbolic links resolved; for a path that does not exist (yet), its longest existing
/// ancestor resolved and the rest appended.
fn canonical(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if parent != p => canonical(parent).join(name),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod file_roots_tests {
    use super::*;

    #[test]
    fn definitions_read_only_under_the_allowed_directories() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for d in ["certs", "data", "elsewhere"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("certs/ca.pem"), "CA").unwrap();
        std::fs::write(base.join("data/master.key"), "KEY").unwrap();
        std::fs::write(base.join("elsewhere/x"), "X").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("data/master.key"), base.join("certs/link.pem"))
            .unwrap();
        let roots = FileRoots::new(
            base.to_path_buf(),
            vec![base.join("certs")],
            vec![base.join("data")],
        );
        assert_eq!(roots.read("certs/ca.pem").unwrap(), "CA");
        assert!(roots.read("certs/../data/master.key").is_err());
        assert!(roots.read("data/master.key").is_err());
        assert!(roots.read("elsewhere/x").is_err());
        assert!(roots.read("/etc/passwd").is_err());
        assert!(
            roots
                .read(&base.join("certs/ca.pem").display().to_string())
                .is_ok()
        );
        #[cfg(unix)]
        assert!(
            roots.read("certs/link.pem").is_err(),
            "a link out of the allowed directories is refused"
        );
    }
}
