//! Counted shares of a replica (requests in flight, sessions, listen streams): a cap for the
//! replica and one for each tenant, taken as a slot that gives itself back when dropped. Only
//! tenants holding something have an entry, so the map is as large as the active tenants.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Which cap refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The replica is full: 503, retry (on another replica).
    Replica,
    /// This tenant holds its share: 429.
    Tenant,
}

#[derive(Default)]
struct Counts {
    total: usize,
    tenants: HashMap<String, usize>,
}

pub struct Quota {
    /// What the quota counts, for refusal messages ("sessions", "listen streams").
    pub what: &'static str,
    pub max: usize,
    /// `None`: no tenant share (without authentication every caller is one tenant).
    pub per_tenant: Option<usize>,
    counts: Mutex<Counts>,
}

/// One held unit of a quota; dropping it gives it back.
pub struct Slot {
    quota: Arc<Quota>,
    tenant: String,
}

impl Quota {
    pub fn new(what: &'static str, max: usize, per_tenant: Option<usize>) -> Arc<Self> {
        Arc::new(Quota { what, max, per_tenant, counts: Mutex::default() })
    }

    pub fn try_acquire(self: &Arc<Self>, tenant: &str) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().expect("quota lock");
        if counts.total >= self.max {
            return Err(Refusal::Replica);
        }
        let held = counts.tenants.get(tenant).copied().unwrap_or(0);
        if self.per_tenant.is_some_and(|share| held >= share) {
            return Err(Refusal::Tenant);
        }
        counts.total += 1;
        *counts.tenants.entry(tenant.to_string()).or_default() += 1;
        Ok(Slot { quota: self.clone(), tenant: tenant.to_string() })
    }

    /// Slots held on the whole replica.
    pub fn held(&self) -> usize {
        self.counts.lock().expect("quota lock").total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.quota.counts.lock().expect("quota lock");
        counts.total -= 1;
        if let Some(held) = counts.tenants.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                counts.tenants.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_the_replica_and_each_tenant_and_gives_back_on_drop() {
        let quota = Quota::new("things", 3, Some(2));
        let a1 = quota.try_acquire("a").unwrap();
        let _a2 = quota.try_acquire("a").unwrap();
        assert_eq!(quota.try_acquire("a").err(), Some(Refusal::Tenant));
        let _b1 = quota.try_acquire("b").unwrap();
        assert_eq!(quota.try_acquire("c").err(), Some(Refusal::Replica));
        drop(a1);
        assert_eq!(quota.held(), 2);
        assert!(quota.try_acquire("a").is_ok());
        assert!(quota.counts.lock().unwrap().tenants.len() <= 2);
    }
}
