//! `portcullis cleanup`: the sweep of expired operational rows that every node also runs in the
//! background (`[cleanup]`), once, now; `--dry-run` only counts.

use super::open_store;
use crate::clock::{Clock, SystemClock};
use crate::config::ServerConfig;
use crate::stores::upkeep::Swept;

/// Sweeps (or, with `dry_run`, counts) the rows expired now, and prints them per table and
/// grant kind.
pub async fn cleanup(config: &ServerConfig, dry_run: bool) -> Result<(), String> {
    let (store, _) = open_store(config).await?;
    let now = SystemClock.now();
    let result = if dry_run {
        store.expired_rows(now).await.map(Some)
    } else {
        store.sweep(now, config.cleanup.batch_size).await
    };
    store.close().await;
    match result.map_err(|e| e.to_string())? {
        Some(rows) => {
            print!("{}", report(&rows, dry_run));
            Ok(())
        }
        None => Err("another node is sweeping right now; try again in a moment".into()),
    }
}

/// One line per table (grants per kind), then the total.
fn report(rows: &Swept, dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for (what, n) in &rows.0 {
        out.push_str(&format!("{what:<28} {n}\n"));
    }
    out.push_str(&format!("{verb} {} expired rows\n", rows.total()));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_names_each_table_and_the_total() {
        let mut rows = super::Swept::default();
        rows.0.insert("grants.code_used".into(), 3);
        rows.0.insert("sessions".into(), 2);
        let r = super::report(&rows, true);
        assert!(r.contains("grants.code_used") && r.contains("sessions"));
        assert!(r.ends_with("would delete 5 expired rows\n"), "{r}");
    }
}
