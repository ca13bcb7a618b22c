//! How often each tenant was read lately, for admission: when the cache is full, a graph is
//! loaded only if its tenant was read more often than the tenant whose copy it would evict.
//! Without it, tenants read about equally often and more than the budget holds are loaded and
//! evicted in turn, every read paying a load instead of a database search.

use std::collections::HashMap;

/// Counts are halved (and zeros forgotten) every `AGE_EVERY` reads, or sooner when this many
/// tenants are counted, so old reads fade and the map stays bounded.
const MAX_TENANTS: usize = 65_536;
const AGE_EVERY: usize = 65_536;

#[derive(Default)]
pub struct Frequency {
    counts: HashMap<String, u32>,
    reads: usize,
}

impl Frequency {
    pub fn read(&mut self, tenant: &str) {
        match self.counts.get_mut(tenant) {
            Some(count) => *count = count.saturating_add(1),
            None => {
                self.counts.insert(tenant.to_string(), 1);
            }
        }
        self.reads += 1;
        if self.reads >= AGE_EVERY || self.counts.len() > MAX_TENANTS {
            self.age();
        }
    }

    pub fn of(&self, tenant: &str) -> u32 {
        self.counts.get(tenant).copied().unwrap_or(0)
    }

    fn age(&mut self) {
        self.counts.retain(|_, count| {
            *count /= 2;
            *count > 0
        });
        self.reads = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fade_and_stay_bounded() {
        let mut f = Frequency::default();
        f.read("a");
        f.read("a");
        f.read("b");
        assert_eq!((f.of("a"), f.of("b"), f.of("c")), (2, 1, 0));
        for i in 0..MAX_TENANTS {
            f.read(&format!("t{i}"));
        }
        assert!(f.counts.len() <= MAX_TENANTS, "aged when it grew past its bound");
        assert_eq!((f.of("a"), f.of("b")), (1, 0), "halved: b forgotten");
    }
}
