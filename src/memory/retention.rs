//! The purge of history older than HISTORY_RETENTION, a task on every replica: purges are
//! idempotent, so replicas need not agree on who runs them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Memory, clock::now_ms};

/// Between purges: a tenth of the retention, within these bounds.
const EVERY_AT_LEAST: Duration = Duration::from_secs(1);
const EVERY_AT_MOST: Duration = Duration::from_secs(600);

impl Memory {
    /// Purges expired history until `stop`, each round until nothing expired is left.
    pub async fn purge_history(self, stop: CancellationToken) {
        let retention = self.limits.history_retention;
        let every = (retention / 10).clamp(EVERY_AT_LEAST, EVERY_AT_MOST);
        loop {
            let before = now_ms().saturating_sub(retention.as_millis().min(i64::MAX as u128) as i64);
            loop {
                match self.store.purge_history(before).await {
                    Ok(0) => break,
                    Ok(purged) => metrics::counter!("history_purged_rows_total").increment(purged),
                    Err(error) => {
                        tracing::warn!(%error, "history purge failed; it is tried again later");
                        break;
                    }
                }
                if stop.is_cancelled() {
                    return;
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
