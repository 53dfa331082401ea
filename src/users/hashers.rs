//! The password hashing threads and their bounded queue.
//!
//! Hashes run on dedicated threads, one per core by default, fed by a queue: the hash costs
//! milliseconds of CPU and must not stall request threads, more hashes at once than cores would
//! only thrash caches (each touches megabytes), and a worker that finishes takes the next job at
//! once. The queue is bounded (`[passwords] max_queued_verifications`): when it is full the
//! caller is told to come back rather than queued without end, and a job whose caller has gone
//! (its request was dropped) is skipped instead of hashed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};

/// The queue is full: nothing was hashed, the caller should try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// What the hashing threads did, for `/metrics` and the tests.
#[derive(Debug, Default)]
pub struct HashStats {
    /// Password verifications actually computed.
    pub computed: AtomicU64,
    /// Jobs skipped because their caller had gone before a thread reached them.
    pub abandoned: AtomicU64,
    /// Verifications refused because the queue was full.
    pub refused: AtomicU64,
}

struct HashJob {
    hash: Option<String>,
    password: String,
    reply: tokio::sync::oneshot::Sender<bool>,
}

impl std::fmt::Debug for HashJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashJob").finish_non_exhaustive()
    }
}

/// The hashing threads of one server (they stop when the last handle is dropped).
#[derive(Debug, Clone)]
pub struct Hashers {
    queue: mpsc::SyncSender<HashJob>,
    stats: Arc<HashStats>,
    threads: usize,
    max_queued: usize,
}

impl Hashers {
    /// Starts `threads` hashing threads (0: one per core) behind a queue of `max_queued` jobs
    /// (0: four per thread).
    pub fn start(threads: usize, max_queued: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let max_queued = match max_queued {
            0 => threads.saturating_mul(4),
            n => n,
        };
        let (tx, rx) = mpsc::sync_channel::<HashJob>(max_queued);
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(HashStats::default());
        for i in 0..threads {
            let rx = rx.clone();
            let stats = stats.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-hash-{i}"))
                .spawn(move || work(&rx, &stats));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            queue: tx,
            stats,
            threads,
            max_queued,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    pub fn stats(&self) -> &HashStats {
        &self.stats
    }

    /// Password verifications computed so far.
    pub fn computed(&self) -> u64 {
        self.stats.computed.load(Relaxed)
    }

    /// Queues a verification of `password` against an argon2id hash (`None`: the same work
    /// against a decoy, answering false, so timing does not tell which usernames exist).
    /// Dropping the receiver withdraws the job if no thread has started it.
    pub fn submit(
        &self,
        hash: Option<String>,
        password: String,
    ) -> Result<tokio::sync::oneshot::Receiver<bool>, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = HashJob {
            hash,
            password,
            reply: tx,
        };
        match self.queue.try_send(job) {
            Ok(()) => Ok(rx),
            Err(_) => {
                self.stats.refused.fetch_add(1, Relaxed);
                Err(Busy)
            }
        }
    }

    /// Verifies `password` against `hash` on the hashing threads; `Busy` when the queue is full.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, Busy> {
        let rx = self.submit(hash, password)?;
        Ok(rx.await.unwrap_or(false))
    }
}

fn work(rx: &Mutex<mpsc::Receiver<HashJob>>, stats: &HashStats) {
    // Memory for argon2, reused between hashes: allocating megabytes per login and handing
    // them back to the kernel costs thousands of page faults.
    let mut blocks: Vec<argon2::Block> = Vec::new();
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if job.reply.is_closed() {
            // The request that wanted this answer is gone: hashing for nobody is what a
            // flood of abandoned requests would make us do.
            stats.abandoned.fetch_add(1, Relaxed);
            continue;
        }
        let target = job.hash.as_deref().unwrap_or(super::DECOY_HASH.as_str());
        let ok =
            super::verify_with(target, job.password.as_bytes(), &mut blocks) && job.hash.is_some();
        stats.computed.fetch_add(1, Relaxed);
        let _ = job.reply.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash that takes a while to verify, so that jobs wait behind it.
    fn slow_hash() -> String {
        use argon2::PasswordHasher;
        let params = argon2::Params::new(16_384, 8, 1, None).unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_with_salt(b"slow", &[7u8; 16])
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let h = Hashers::start(1, 4);
        let hash = super::super::hash_password("correct horse").unwrap();
        assert_eq!(
            h.verify(Some(hash.clone()), "correct horse".into()).await,
            Ok(true)
        );
        assert_eq!(h.verify(Some(hash), "wrong".into()).await, Ok(false));
        assert_eq!(h.verify(None, "anything".into()).await, Ok(false));
        assert_eq!(h.computed(), 3);
    }

    #[tokio::test]
    async fn work_for_a_client_that_has_gone_is_not_hashed() {
        let h = Hashers::start(1, 4);
        let slow = slow_hash();
        let first = h.submit(Some(slow.clone()), "x".into()).unwrap();
        // Queued behind the first, then its caller goes away.
        let gone = h.submit(Some(slow.clone()), "y".into()).unwrap();
        drop(gone);
        // A third job: when it is answered, the thread has passed the second.
        let third = h.submit(Some(slow), "z".into()).unwrap();
        assert_eq!(first.await, Ok(false));
        assert_eq!(third.await, Ok(false));
        assert_eq!(h.computed(), 2, "the abandoned job was not hashed");
        assert_eq!(h.stats().abandoned.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_queueing() {
        let h = Hashers::start(1, 1);
        let slow = slow_hash();
        let mut accepted = Vec::new();
        let mut busy = 0;
        for _ in 0..6 {
            match h.submit(Some(slow.clone()), "x".into()) {
                Ok(rx) => accepted.push(rx),
                Err(Busy) => busy += 1,
            }
        }
        // One thread hashing and one job queued at most: the rest are refused.
        assert!(accepted.len() <= 2, "{} accepted", accepted.len());
        assert!(busy >= 4);
        for rx in accepted {
            assert_eq!(rx.await, Ok(false));
        }
        assert_eq!(h.stats().refused.load(Relaxed), busy);
    }
}
