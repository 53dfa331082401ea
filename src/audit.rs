//! The audit trail: every security event (tracing target `security`, written by `events` and
//! wherever a rule refuses something) as one JSON object per line, besides the log — appended to
//! a file (`[audit] file`) and/or POSTed to a webhook in batches (`[audit] webhook_url`).
//!
//! Delivery to the webhook is at least once, across restarts: events are first appended to a
//! spool on disk (`<data_dir>/audit/`, segments of at most [`SEGMENT_BYTES`]) and the position of
//! the last event the webhook acknowledged (a 2xx answer) is kept in `<data_dir>/audit/cursor`.
//! After a restart, delivery resumes after that position; a batch that was sent but not
//! acknowledged is sent again. Each event carries a random `id`, so a receiver can drop a
//! repeat.
//!
//! The [`AuditLayer`] is part of the process's tracing subscriber; [`open`] attaches this
//! node's sinks to it (one set per process), and [`deliver`] runs the webhook sender.

use crate::state::AppState;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// A spool segment is closed once it holds this many bytes; delivered segments are deleted.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Events queued between the serving threads and the writer thread. When full, the event's
/// thread waits (as for the log): an audit trail does not drop events to save latency.
const QUEUE: usize = 16 * 1024;
/// The most bytes of events one webhook request carries (besides `[audit] batch_size`).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Where the layer sends events: the writer of the node's sinks, when one is open.
static SINK: std::sync::RwLock<Option<SyncSender<String>>> = std::sync::RwLock::new(None);
/// Whether a sink is open: the layer's only cost on the token path when there is none.
static OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The tracing layer that turns security events into audit lines. Without an open sink it does
/// nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuditLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if !OPEN.load(std::sync::atomic::Ordering::Relaxed)
            || event.metadata().target() != "security"
        {
            return;
        }
        let Some(tx) = SINK.read().ok().and_then(|s| s.clone()) else {
            return;
        };
        let mut fields = Fields(serde_json::Map::new());
        fields.0.insert("id".into(), new_id().into());
        fields.0.insert("time".into(), now_rfc3339().into());
        fields.0.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        event.record(&mut fields);
        if let Ok(line) = serde_json::to_string(&fields.0) {
            let _ = tx.send(line);
        }
    }
}

/// The audit layer with the filter it needs (security events at INFO and above, whatever the
/// log's level), for a subscriber that is a registry of per-layer-filtered layers.
pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    AuditLayer.with_filter(
        tracing_subscriber::filter::Targets::new().with_target("security", tracing::Level::INFO),
    )
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

fn new_id() -> String {
    let b: [u8; 16] = crate::secrets::random_bytes();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::from(crate::clock::SystemClock::file_time());
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The node's open sinks; closing (dropping) it detaches them from the layer and waits until
/// every queued event is written.
pub struct Audit {
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        OPEN.store(false, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut s) = SINK.write() {
            *s = None; // the writer ends when the last sender is gone
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Opens the sinks `[audit]` names (none: `Ok(None)`) and attaches them to the layer.
pub fn open(config: &crate::config::ServerConfig) -> Result<Option<Audit>, String> {
    let audit = &config.audit;
    if audit.file.is_none() && audit.webhook.is_none() {
        return Ok(None);
    }
    let file = match &audit.file {
        Some(path) => Some(BufWriter::new(append(path)?)),
        None => None,
    };
    let spool = match &audit.webhook {
        Some(_) => Some(SpoolWriter::open(
            &spool_dir(config),
            audit.spool_max_bytes,
        )?),
        None => None,
    };
    let (tx, rx) = sync_channel(QUEUE);
    let writer = std::thread::Builder::new()
        .name("portcullis-audit".into())
        .spawn(move || write_loop(rx, file, spool))
        .map_err(|e| format!("cannot start the audit writer: {e}"))?;
    if let Ok(mut s) = SINK.write() {
        *s = Some(tx);
    }
    OPEN.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Some(Audit {
        writer: Some(writer),
    }))
}

fn spool_dir(config: &crate::config::ServerConfig) -> PathBuf {
    config.paths.data_dir.join("audit")
}

fn append(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes queued events until every sender is gone, flushing whenever the queue is empty.
fn write_loop(
    rx: Receiver<String>,
    mut file: Option<BufWriter<File>>,
    mut spool: Option<SpoolWriter>,
) {
    while let Ok(first) = rx.recv() {
        let mut line = Some(first);
        while let Some(l) = line {
            if let Some(f) = file.as_mut()
                && let Err(e) = writeln!(f, "{l}")
            {
                tracing::error!(error = %e, "cannot write the audit file");
            }
            if let Some(s) = spool.as_mut() {
                s.push(&l);
            }
            line = rx.try_recv().ok();
        }
        if let Some(f) = file.as_mut()
            && let Err(e) = f.flush()
        {
            tracing::error!(error = %e, "cannot write the audit file");
        }
        if let Some(s) = spool.as_mut() {
            s.flush();
        }
    }
}

fn segment_name(n: u64) -> String {
    format!("{n:020}.jsonl")
}

/// The spool's segment numbers, oldest first.
fn segments(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".jsonl")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The appending end of the spool.
struct SpoolWriter {
    dir: PathBuf,
    segment: u64,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    dropped: u64,
}

impl SpoolWriter {
    fn open(dir: &Path, max_bytes: u64) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut segment = segments(dir).last().copied().unwrap_or(1);
        // A segment that does not end with a whole line (the process died while writing it)
        // is left as it is: appending would glue the next event to the cut one.
        let whole = std::fs::read(dir.join(segment_name(segment)))
            .map(|b| b.last().is_none_or(|c| *c == b'\n'))
            .unwrap_or(true);
        if !whole {
            segment += 1;
        }
        let file = append(&dir.join(segment_name(segment)))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(SpoolWriter {
            dir: dir.to_path_buf(),
            segment,
            out: BufWriter::new(file),
            size,
            max_bytes,
            dropped: 0,
        })
    }

    fn total(&self) -> u64 {
        segments(&self.dir)
            .iter()
            .filter_map(|n| std::fs::metadata(self.dir.join(segment_name(*n))).ok())
            .map(|m| m.len())
            .sum()
    }

    fn push(&mut self, line: &str) {
        if self.size >= SEGMENT_BYTES {
            // A new segment; the spool's bound is checked once per segment.
            let _ = self.out.flush();
            if self.total() >= self.max_bytes {
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    tracing::error!(
                        dropped = self.dropped,
                        "audit spool full (the webhook is not taking events): events dropped"
                    );
                }
                return;
            }
            match append(&self.dir.join(segment_name(self.segment + 1))) {
                Ok(f) => {
                    self.segment += 1;
                    self.out = BufWriter::new(f);
                    self.size = 0;
                }
                Err(e) => tracing::error!(error = %e, "cannot start an audit spool segment"),
            }
        }
        match writeln!(self.out, "{line}") {
            Ok(()) => self.size += line.len() as u64 + 1,
            Err(e) => tracing::error!(error = %e, "cannot write the audit spool"),
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(error = %e, "cannot write the audit spool");
        }
    }
}

/// The reading end of the spool: the next unacknowledged events, and the acknowledgement.
pub struct SpoolReader {
    dir: PathBuf,
    segment: u64,
    offset: u64,
}

/// A batch read from the spool: a JSON array of events, and where the spool stands after it.
pub struct Batch {
    pub body: Vec<u8>,
    pub events: usize,
    segment: u64,
    offset: u64,
}

impl SpoolReader {
    /// Resumes after the last acknowledged event (`cursor`), or at the oldest segment.
    pub fn open(dir: &Path) -> Self {
        let (segment, offset) = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|c| {
                let (s, o) = c.trim().split_once(' ')?;
                Some((s.parse().ok()?, o.parse().ok()?))
            })
            .unwrap_or_else(|| (segments(dir).first().copied().unwrap_or(1), 0));
        SpoolReader {
            dir: dir.to_path_buf(),
            segment,
            offset,
        }
    }

    /// Up to `max_events` complete events after the cursor, moving past delivered segments;
    /// `None` when there is nothing new.
    pub fn next(&mut self, max_events: usize) -> Option<Batch> {
        loop {
            let path = self.dir.join(segment_name(self.segment));
            let mut buf = Vec::new();
            if let Ok(mut f) = File::open(&path) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len < self.offset {
                    self.offset = 0; // the segment was replaced: read it whole
                }
                if f.seek(SeekFrom::Start(self.offset)).is_ok() {
                    let _ = f.take(MAX_BATCH_BYTES as u64).read_to_end(&mut buf);
                }
            }
            let mut end = 0;
            let mut events = Vec::new();
            for line in buf.split_inclusive(|b| *b == b'\n') {
                if events.len() >= max_events || line.last() != Some(&b'\n') {
                    break;
                }
                end += line.len();
                let json = line.strip_suffix(b"\n").unwrap_or(line);
                // Only whole events go out (a line cut by a crash or a skip never does).
                if serde_json::from_slice::<serde::de::IgnoredAny>(json).is_ok() {
                    events.push(json);
                } else if !json.is_empty() {
                    tracing::error!(
                        segment = self.segment,
                        "an unreadable audit line was skipped"
                    );
                }
            }
            if end > 0 && events.is_empty() {
                // Only unreadable lines: past them, and on.
                self.offset += end as u64;
                self.save();
                continue;
            }
            if end > 0 {
                let mut body = Vec::with_capacity(end + 2);
                body.push(b'[');
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(e);
                }
                body.push(b']');
                return Some(Batch {
                    body,
                    events: events.len(),
                    segment: self.segment,
                    offset: self.offset + end as u64,
                });
            }
            if buf.len() >= MAX_BATCH_BYTES {
                // One line longer than a whole batch (never written by the layer): skip it
                // rather than wait behind it for ever.
                tracing::error!(
                    segment = self.segment,
                    offset = self.offset,
                    "an audit line longer than 1 MiB was skipped"
                );
                let skip = buf.len() as u64;
                self.offset += skip;
                self.save();
                continue;
            }
            // Nothing complete here: go on to the next segment once the writer has.
            let next = segments(&self.dir)
                .into_iter()
                .find(|n| *n > self.segment)?;
            let _ = std::fs::remove_file(&path);
            self.segment = next;
            self.offset = 0;
            self.save();
        }
    }

    /// The webhook took `batch`: never send it again.
    pub fn acknowledge(&mut self, batch: &Batch) {
        self.segment = batch.segment;
        self.offset = batch.offset;
        self.save();
    }

    fn save(&self) {
        let tmp = self.dir.join("cursor.tmp");
        let written = std::fs::write(&tmp, format!("{} {}\n", self.segment, self.offset))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("cursor")));
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot save the audit cursor (events may be sent again)");
        }
    }
}

/// Sends the spool to `[audit] webhook_url` until `shutdown`: batches of at most `batch_size`
/// events as a JSON array (`Content-Type: application/json`), through the outbound guard; the
/// next batch only after a 2xx, with a growing pause (to a minute) after a failure.
pub async fn deliver(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Some(webhook) = state.config.audit.webhook.clone() else {
        return;
    };
    let reader = Arc::new(Mutex::new(SpoolReader::open(&spool_dir(&state.config))));
    let every = state.config.audit.flush_interval;
    let mut pause = every;
    loop {
        let r = reader.clone();
        let max = state.config.audit.batch_size;
        let batch = tokio::task::spawn_blocking(move || r.lock().ok()?.next(max))
            .await
            .ok()
            .flatten();
        let wait = match batch {
            None => every,
            Some(batch) => {
                let mut req = state
                    .outbound
                    .post(&webhook.url)
                    .body("application/json", batch.body.clone());
                if let Some(auth) = &webhook.authorization {
                    match reqwest::header::HeaderValue::from_str(auth) {
                        Ok(v) => req = req.header(reqwest::header::AUTHORIZATION, v),
                        Err(_) => {
                            tracing::error!("audit.webhook_authorization is not a header value")
                        }
                    }
                }
                match req.send_for_status().await {
                    Ok(s) if s.is_success() => {
                        let r = reader.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Ok(mut r) = r.lock() {
                                r.acknowledge(&batch);
                            }
                        })
                        .await;
                        pause = every;
                        Duration::ZERO
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(s) => format!("answered {s}"),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(events = batch.events, error = %why, "audit webhook failed; retrying");
                        pause = (pause * 2).min(Duration::from_secs(60));
                        pause
                    }
                }
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        } else if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_resends_what_was_not_acknowledged_and_never_what_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpoolWriter::open(dir.path(), u64::MAX).unwrap();
        for i in 0..5 {
            w.push(&format!("{{\"n\":{i}}}"));
        }
        w.flush();
        let mut r = SpoolReader::open(dir.path());
        let b = r.next(2).unwrap();
        assert_eq!(b.body, b"[{\"n\":0},{\"n\":1}]");
        r.acknowledge(&b);
        let unacknowledged = r.next(2).unwrap();
        assert_eq!(unacknowledged.body, b"[{\"n\":2},{\"n\":3}]");
        // A restart: the reader resumes after the last acknowledgement.
        drop((r, w));
        let mut r = SpoolReader::open(dir.path());
        let b = r.next(10).unwrap();
        assert_eq!(b.body, b"[{\"n\":2},{\"n\":3},{\"n\":4}]");
        r.acknowledge(&b);
        assert!(r.next(10).is_none(), "nothing new");
        let mut w = SpoolWriter::open(dir.path(), u64::MAX).unwrap();
        w.push("{\"n\":5}");
        w.flush();
        assert_eq!(r.next(10).unwrap().body, b"[{\"n\":5}]");
    }

    #[test]
    fn after_a_crash_mid_line_the_writer_starts_a_new_segment_and_the_cut_line_is_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(segment_name(1)), "{\"a\":1}\n{\"b\":").unwrap();
        let mut w = SpoolWriter::open(dir.path(), u64::MAX).unwrap();
        w.push("{\"c\":3}");
        w.flush();
        let mut r = SpoolReader::open(dir.path());
        let b = r.next(10).unwrap();
        assert_eq!(b.body, b"[{\"a\":1}]");
        r.acknowledge(&b);
        assert_eq!(r.next(10).unwrap().body, b"[{\"c\":3}]");
    }

    #[test]
    fn a_half_written_line_waits_and_delivered_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(segment_name(1)), "{\"a\":1}\n{\"b\":").unwrap();
        let mut r = SpoolReader::open(dir.path());
        let b = r.next(10).unwrap();
        assert_eq!(b.body, b"[{\"a\":1}]");
        r.acknowledge(&b);
        assert!(r.next(10).is_none(), "the partial line is not an event yet");
        std::fs::write(dir.path().join(segment_name(2)), "{\"c\":3}\n").unwrap();
        // The writer moved on: the rest of segment 1 will never complete.
        assert_eq!(r.next(10).unwrap().body, b"[{\"c\":3}]");
        assert!(!dir.path().join(segment_name(1)).exists());
    }
}
