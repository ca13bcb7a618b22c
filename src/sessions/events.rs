//! The SSE event log in Redis, so a client whose stream dropped resumes it with `Last-Event-ID`
//! on any replica. Each stream is a Redis list of `"<seq> <event>"` entries, bounded by count
//! (oldest trimmed first) and by a TTL renewed on every write; event ids are `<seq>-<stream id>`,
//! so the id alone locates the stream (stream ids are rmcp's random UUIDs or the session id).

use std::time::Duration;

use rmcp::{
    model::ServerJsonRpcMessage,
    transport::{
        common::server_side_http::ServerSseMessage,
        streamable_http_server::session::{EventId, EventStore, EventStoreError, EventStream},
    },
};
use serde::{Deserialize, Serialize};

use crate::redis::RedisPool;

/// Appends one event and returns its sequence number, atomically.
const APPEND: &str = r"
local seq = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], seq .. ' ' .. ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return seq
";

pub struct RedisEventStore {
    pool: RedisPool,
    prefix: String,
    max_events: usize,
    ttl: Duration,
    append: redis::Script,
}

#[derive(Serialize, Deserialize)]
struct StoredEvent {
    message: Option<ServerJsonRpcMessage>,
    retry_ms: Option<u64>,
}

impl RedisEventStore {
    pub fn new(pool: RedisPool, prefix: impl Into<String>, max_events: usize, ttl: Duration) -> Self {
        RedisEventStore {
            pool,
            prefix: prefix.into(),
            max_events: max_events.max(1),
            ttl,
            append: redis::Script::new(APPEND),
        }
    }

    fn failed(operation: &'static str, error: impl std::fmt::Display) -> EventStoreError {
        metrics::counter!("redis_errors_total", "operation" => operation).increment(1);
        format!("event store {operation}: {error}").into()
    }
}

/// `<seq>-<stream id>` → (seq, stream id).
fn parse_event_id(id: &str) -> Option<(u64, &str)> {
    let (seq, stream) = id.split_once('-')?;
    Some((seq.parse().ok()?, stream)).filter(|(_, s)| !s.is_empty())
}

#[async_trait::async_trait]
impl EventStore for RedisEventStore {
    async fn store_event(&self, stream_id: &str, event: &ServerSseMessage) -> Result<EventId, EventStoreError> {
        let stored = StoredEvent {
            message: event.message.as_deref().cloned(),
            retry_ms: event.retry.map(|r| r.as_millis() as u64),
        };
        let json = serde_json::to_string(&stored).map_err(|e| Self::failed("event_store", e))?;
        let mut conn = self.pool.get().await.map_err(|e| Self::failed("event_store", e))?;
        let seq: u64 = self
            .append
            .key(format!("{}{stream_id}:seq", self.prefix))
            .key(format!("{}{stream_id}", self.prefix))
            .arg(json)
            .arg(self.max_events)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut *conn)
            .await
            .map_err(|e| Self::failed("event_store", e))?;
        Ok(format!("{seq}-{stream_id}"))
    }

    async fn replay_events_after(&self, last_event_id: &str) -> Result<EventStream, EventStoreError> {
        let (after, stream_id) =
            parse_event_id(last_event_id).ok_or_else(|| EventStoreError::from("malformed Last-Event-ID"))?;
        let mut conn = self.pool.get().await.map_err(|e| Self::failed("event_replay", e))?;
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{}{stream_id}", self.prefix))
            .arg(0)
            .arg(-1)
            .query_async(&mut *conn)
            .await
            .map_err(|e| Self::failed("event_replay", e))?;
        let mut events = Vec::new();
        for entry in entries {
            let Some((seq, json)) = entry.split_once(' ').and_then(|(s, j)| Some((s.parse::<u64>().ok()?, j))) else {
                continue;
            };
            if seq <= after {
                continue;
            }
            let stored: StoredEvent = serde_json::from_str(json).map_err(|e| Self::failed("event_replay", e))?;
            let mut event = ServerSseMessage::default();
            event.event_id = Some(format!("{seq}-{stream_id}"));
            event.message = stored.message.map(std::sync::Arc::new);
            event.retry = stored.retry_ms.map(Duration::from_millis);
            events.push(event);
        }
        metrics::counter!("sse_events_replayed_total").increment(events.len() as u64);
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_event_id;

    #[test]
    fn event_ids_carry_their_stream() {
        assert_eq!(parse_event_id("7-abc:common"), Some((7, "abc:common")));
        assert_eq!(parse_event_id("12-0b1e-uuid-with-dashes"), Some((12, "0b1e-uuid-with-dashes")));
        assert_eq!(parse_event_id("x-abc"), None);
        assert_eq!(parse_event_id("7-"), None);
        assert_eq!(parse_event_id("7"), None);
    }
}
