//! What the reload task remembers between scans (held in the application state, used only by
//! [`super::sync`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What the last scan of the tenants directory saw: file → digest of its content.
#[derive(Debug, Default)]
pub struct FileState {
    pub(super) seen: HashMap<PathBuf, Seen>,
    pub(super) scanned: bool,
    /// Digest of the provider files as last loaded (`None`: load them on the next scan).
    pub(super) providers: Option<Vec<u8>>,
}

/// One file as a scan read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) digest: Vec<u8>,
    /// Its metadata when read, and when the scan that read it started.
    pub(super) stat: Option<(Stat, SystemTime)>,
}

/// What a file's metadata says about its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    len: u64,
    modified: SystemTime,
    inode: u64,
}

/// File systems keep modification times to a second at worst.
const TIMESTAMP_GRANULARITY: Duration = Duration::from_secs(2);

impl Stat {
    pub(super) fn of(meta: &std::fs::Metadata) -> Option<Self> {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok()?,
            inode,
        })
    }
}

impl Seen {
    /// Whether the file is known unchanged without reading it: the same length, inode and
    /// modification time as when read, and that time older, by more than the file system's
    /// timestamp granularity, than the scan that read it (a change made in the same tick as
    /// the read could keep the time: such a file is read again, as git does with its index).
    pub(super) fn unchanged(&self, now: Stat) -> bool {
        self.stat.is_some_and(|(then, scanned_at)| {
            then == now
                && then
                    .modified
                    .checked_add(TIMESTAMP_GRANULARITY)
                    .is_some_and(|t| t < scanned_at)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_again_unless_its_metadata_is_unchanged_and_older_than_the_read() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let stat = Stat {
            len: 10,
            modified: t,
            inode: 1,
        };
        let seen = |scanned: SystemTime| Seen {
            digest: vec![1],
            stat: Some((stat, scanned)),
        };
        let later = t + Duration::from_secs(3);
        assert!(seen(later).unchanged(stat));
        assert!(
            !seen(t + Duration::from_secs(1)).unchanged(stat),
            "modified within the timestamp granularity of the read: a later change may keep the time"
        );
        assert!(!seen(later).unchanged(Stat { len: 11, ..stat }));
        assert!(!seen(later).unchanged(Stat { inode: 2, ..stat }));
        assert!(!seen(later).unchanged(Stat {
            modified: t + Duration::from_secs(1),
            ..stat
        }));
        let unknown = Seen {
            digest: vec![1],
            stat: None,
        };
        assert!(!unknown.unchanged(stat));
    }
}
