//! Tenants whose graph failed to load (on PostgreSQL a graph too large to read within one
//! statement's timeout, or an outage): their reads go to the database until a backoff passes,
//! doubled by each failure in a row, so that no read waits again for a load that just failed.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

const FIRST: Duration = Duration::from_secs(60);
const MOST: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(super) struct Failures(HashMap<String, Failure>);

struct Failure {
    until: Instant,
    in_a_row: u32,
}

impl Failures {
    /// Records a failed load of the tenant's graph; returns how long its reads do not load it.
    pub(super) fn failed(&mut self, tenant: &str) -> Duration {
        if self.0.len() >= 4096 && !self.0.contains_key(tenant) {
            // An outage fails every tenant's load: past this many, the backoffs start again.
            self.0.clear();
        }
        let in_a_row = self.0.get(tenant).map_or(0, |f| f.in_a_row) + 1;
        let wait = FIRST.saturating_mul(1 << (in_a_row - 1).min(6)).min(MOST);
        self.0.insert(tenant.to_string(), Failure { until: Instant::now() + wait, in_a_row });
        wait
    }

    pub(super) fn waiting(&self, tenant: &str) -> bool {
        self.0.get(tenant).is_some_and(|f| Instant::now() < f.until)
    }

    pub(super) fn loaded(&mut self, tenant: &str) {
        self.0.remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_in_a_row_doubles_the_wait_up_to_an_hour_a_load_clears_it_and_tenants_are_bounded() {
        let mut failures = Failures::default();
        assert!(!failures.waiting("t"));
        let waits: Vec<_> = (0..9).map(|_| failures.failed("t").as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert!(failures.waiting("t") && !failures.waiting("other"));
        failures.loaded("t");
        assert!(!failures.waiting("t"));
        assert_eq!(failures.failed("t").as_secs(), 60);
        for i in 0..4096 {
            failures.failed(&format!("tenant {i}"));
        }
        assert!(failures.0.len() <= 4096 && !failures.waiting("t"), "bounded: the oldest backoffs are gone");
    }
}
