//! What the reload task remembers between scans (held in the application state, used only by
//! [`super::sync`]).

use std::collections::HashMap;
use std::path::PathBuf;

/// What the last scan of the tenants directory saw: file → digest of its content.
#[derive(Debug, Default)]
pub struct FileState {
    pub(super) seen: HashMap<PathBuf, Vec<u8>>,
    pub(super) scanned: bool,
    /// Digest of the provider files as last loaded (`None`: load them on the next scan).
    pub(super) providers: Option<Vec<u8>>,
}
