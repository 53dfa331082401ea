//! Configuration in two layers (STYLE.md §11): strict file schemas (`deny_unknown_fields`) that
//! resolve into the runtime types the rest of the code uses.

pub mod server;
pub mod tenant;

pub use server::ServerConfig;
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
