//! Per-tenant rate limiting shared by every replica: GCRA in one atomic Redis script. When Redis
//! cannot answer, each replica falls back to its own in-memory limiter (governor) with the same
//! quota, logs the outage once, counts it, and returns to Redis by itself when Redis is back.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use crate::redis::RedisPool;

/// GCRA (generic cell rate algorithm): one key per tenant holding the theoretical arrival time.
/// Uses Redis' clock so replicas with skewed clocks still agree.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, allow_at - now, 0, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return {1, 0, math.floor((now - (new_tat - burst * interval)) / interval), new_tat - now}
";

/// The verdict for one request, with what the RateLimit headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset: u64,
    /// Seconds to wait before retrying (0 when allowed).
    pub retry_after: u64,
}

pub struct RateLimiter {
    per_minute: u32,
    redis: Option<RedisPool>,
    timeout: Duration,
    prefix: String,
    script: redis::Script,
    local: DefaultKeyedRateLimiter<String>,
    /// Set while Redis is failing, so the outage is logged once and recovery once.
    degraded: AtomicBool,
    /// Skip Redis until this time (ms since epoch) after a failure: no timeout per request.
    retry_redis_at: AtomicU64,
}

impl RateLimiter {
    pub fn new(per_minute: u32, redis: Option<RedisPool>, timeout: Duration, prefix: impl Into<String>) -> Self {
        let burst = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(burst).allow_burst(burst);
        RateLimiter {
            per_minute: burst.get(),
            redis,
            timeout,
            prefix: prefix.into(),
            script: redis::Script::new(GCRA),
            local: DefaultKeyedRateLimiter::keyed(quota),
            degraded: AtomicBool::new(false),
            retry_redis_at: AtomicU64::new(0),
        }
    }

    pub async fn check(&self, tenant: &str) -> Decision {
        if let Some(pool) = &self.redis
            && now_ms() >= self.retry_redis_at.load(Ordering::Relaxed)
        {
            match tokio::time::timeout(self.timeout, self.check_redis(pool, tenant)).await {
                Ok(Ok(decision)) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        metrics::gauge!("rate_limit_degraded").set(0.0);
                        tracing::info!("rate limiting: Redis is back, limits are shared again");
                    }
                    return decision;
                }
                Ok(Err(error)) => self.redis_failed(&error.to_string()),
                Err(_) => self.redis_failed("timed out"),
            }
        }
        self.check_local(tenant)
    }

    fn redis_failed(&self, error: &str) {
        metrics::counter!("redis_errors_total", "operation" => "rate_limit").increment(1);
        metrics::counter!("rate_limit_fallback_total").increment(1);
        self.retry_redis_at.store(now_ms() + 1000, Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            metrics::gauge!("rate_limit_degraded").set(1.0);
            tracing::warn!(error, "rate limiting: Redis unavailable, falling back to per-replica limits");
        }
    }

    async fn check_redis(
        &self,
        pool: &RedisPool,
        tenant: &str,
    ) -> Result<Decision, Box<dyn std::error::Error + Send + Sync>> {
        let mut conn = pool.get().await?;
        let interval_ms = 60_000 / u64::from(self.per_minute);
        let (allowed, retry_ms, remaining, reset_ms): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}{tenant}", self.prefix))
            .arg(interval_ms)
            .arg(self.per_minute)
            .invoke_async(&mut *conn)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            limit: self.per_minute,
            remaining: remaining.clamp(0, i64::from(self.per_minute)) as u32,
            reset: ceil_secs(reset_ms),
            retry_after: ceil_secs(retry_ms),
        })
    }

    fn check_local(&self, tenant: &str) -> Decision {
        let key = tenant.to_string();
        match self.local.check_key(&key) {
            Ok(_) => Decision { allowed: true, limit: self.per_minute, remaining: 0, reset: 60, retry_after: 0 },
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.local.clock().now());
                Decision {
                    allowed: false,
                    limit: self.per_minute,
                    remaining: 0,
                    reset: 60,
                    retry_after: wait.as_secs().max(1),
                }
            }
        }
    }
}

fn ceil_secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
