//! Resource-update fan-out across replicas. A write publishes which resources of a tenant
//! changed on a Redis channel; every replica delivers the update to the subscribers it holds
//! (`subscriptions/listen` requests, or the GET stream of a session that called
//! `resources/subscribe`). Without Redis, updates stay on the replica that made them.
//!
//! Resources are named by a key (`graph`, `entity:<name>`) so that differently encoded URIs of
//! one resource match; each subscriber is notified with the URI it subscribed with.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::redis::RedisPool;

mod sessions;
#[cfg(test)]
mod tests;

/// Where updates are published and session subscriptions kept in Redis.
pub const UPDATES_PREFIX: &str = "mcp-server:resources:";

/// Updates waiting for a slow subscriber; beyond this they are dropped (and counted).
const SUBSCRIBER_BUFFER: usize = 64;

#[derive(Serialize, Deserialize)]
struct Update {
    tenant: String,
    keys: Vec<String>,
}

/// What travels on the channel: resource updates, and sessions ended by DELETE (so that every
/// replica holding a copy of the session drops it).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Message {
    Update(Update),
    SessionClosed { closed_session: String },
}

type SessionClosedHook = Box<dyn Fn(String) + Send + Sync>;

enum Interest {
    /// A `subscriptions/listen` request (or a stdio subscriber): key → URI as subscribed.
    Resources { tenant: String, uris: HashMap<String, String> },
    /// The GET stream of a session; what it subscribed to is kept per tenant and key.
    Session(String),
}

struct Subscriber {
    interest: Interest,
    tx: mpsc::Sender<String>,
}

#[derive(Default)]
struct Local {
    /// Set at shutdown: subscribers are let go so their streams end cleanly.
    closed: bool,
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// Session subscriptions when there is no Redis: (tenant, key) → (session, uri).
    sessions: HashMap<(String, String), HashSet<(String, String)>>,
}

pub struct ResourceUpdates {
    redis: Option<(RedisPool, redis::Client)>,
    prefix: String,
    ttl: Duration,
    /// Bounds every Redis call (REDIS_TIMEOUT): a hung Redis must not hang a tool call.
    timeout: Duration,
    local: Mutex<Local>,
    /// Subscriptions not yet dropped (their handlers still running).
    live: std::sync::atomic::AtomicUsize,
    session_closed: std::sync::OnceLock<SessionClosedHook>,
}

/// Keeps a subscriber registered; dropping it unregisters.
pub struct Subscription {
    hub: Arc<ResourceUpdates>,
    id: u64,
    pub updates: mpsc::Receiver<String>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.local.lock().expect("subscriber map lock").subscribers.remove(&self.id);
        self.hub.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        metrics::gauge!("mcp_subscriptions_active").decrement(1.0);
    }
}

fn failed(operation: &'static str, error: impl std::fmt::Display) {
    metrics::counter!("redis_errors_total", "operation" => operation).increment(1);
    tracing::warn!(%error, operation, "resource updates: Redis failed");
}

impl ResourceUpdates {
    pub fn new(
        redis: Option<(RedisPool, redis::Client)>,
        prefix: impl Into<String>,
        ttl: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(ResourceUpdates {
            redis,
            prefix: prefix.into(),
            ttl,
            timeout,
            local: Mutex::default(),
            live: std::sync::atomic::AtomicUsize::new(0),
            session_closed: std::sync::OnceLock::new(),
        })
    }

    /// Runs `pipe` on a pooled connection within REDIS_TIMEOUT (a hung Redis must not hang a tool
    /// call). A failure is counted and logged as `operation` and yields `None`, as does no Redis.
    async fn query<T: redis::FromRedisValue>(&self, operation: &'static str, pipe: &redis::Pipeline) -> Option<T> {
        let (pool, _) = self.redis.as_ref()?;
        let work = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            pipe.query_async::<T>(&mut *conn).await.map_err(|e| e.to_string())
        };
        let result = tokio::time::timeout(self.timeout, work).await.unwrap_or_else(|_| Err("timed out".into()));
        result.map_err(|e| failed(operation, e)).ok()
    }

    /// Shutdown: every subscription ends (its receiver yields `None`), new ones end at once, so
    /// listen requests finish with their final result and clients resume on another replica.
    /// Returns once their handlers have let go (at most `within`): whether there were any.
    pub async fn close(&self, within: Duration) -> bool {
        {
            let mut local = self.local.lock().expect("subscriber map lock");
            local.closed = true;
            local.subscribers.clear();
        }
        let had_any = self.live.load(std::sync::atomic::Ordering::SeqCst) > 0;
        let deadline = tokio::time::Instant::now() + within;
        while self.live.load(std::sync::atomic::Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        had_any
    }

    /// Whether updates and session subscriptions are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    fn channel(&self) -> String {
        format!("{}updates", self.prefix)
    }

    fn register(self: &Arc<Self>, interest: Interest) -> Subscription {
        let (tx, updates) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut local = self.local.lock().expect("subscriber map lock");
        local.next_id += 1;
        let id = local.next_id;
        if !local.closed {
            local.subscribers.insert(id, Subscriber { interest, tx });
        }
        self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        metrics::gauge!("mcp_subscriptions_active").increment(1.0);
        Subscription { hub: self.clone(), id, updates }
    }

    /// A subscriber to fixed resources of one tenant: `uris` maps each key to the URI as given.
    pub fn listen(self: &Arc<Self>, tenant: &str, uris: HashMap<String, String>) -> Subscription {
        self.register(Interest::Resources { tenant: tenant.to_string(), uris })
    }

    /// The GET stream of `session` on this replica: it receives what the session subscribed to.
    pub fn attach_session(self: &Arc<Self>, session: &str) -> Subscription {
        self.register(Interest::Session(session.to_string()))
    }

    /// Called with the id of every session another replica (or this one) ended with DELETE.
    pub fn on_session_closed(&self, hook: impl Fn(String) + Send + Sync + 'static) {
        let _ = self.session_closed.set(Box::new(hook));
    }

    /// Publishes `message` to every replica; false when Redis is missing or failed.
    async fn send(&self, message: &Message) -> bool {
        let payload = serde_json::to_string(message).expect("message serializes");
        self.query::<()>("publish", redis::pipe().publish(self.channel(), payload)).await.is_some()
    }

    /// Tells every replica that `keys` of `tenant` changed.
    pub async fn publish(&self, tenant: &str, keys: Vec<String>) {
        let message = Message::Update(Update { tenant: tenant.to_string(), keys });
        // Without Redis, or when it failed, this replica's subscribers still hear.
        if self.send(&message).await {
            return;
        }
        if let Message::Update(update) = message {
            self.deliver(update).await;
        }
    }

    /// Tells every replica that `session` ended, so none keeps serving its local copy.
    pub async fn publish_session_closed(&self, session: &str) {
        self.send(&Message::SessionClosed { closed_session: session.to_string() }).await;
    }

    /// Hands an update to the matching subscribers on this replica.
    async fn deliver(&self, update: Update) {
        let mut targets: Vec<(mpsc::Sender<String>, String)> = Vec::new();
        let mut sessions: HashMap<String, mpsc::Sender<String>> = HashMap::new();
        {
            let local = self.local.lock().expect("subscriber map lock");
            for subscriber in local.subscribers.values() {
                match &subscriber.interest {
                    Interest::Resources { tenant, uris } if *tenant == update.tenant => {
                        targets.extend(
                            update
                                .keys
                                .iter()
                                .filter_map(|k| uris.get(k))
                                .map(|uri| (subscriber.tx.clone(), uri.clone())),
                        );
                    }
                    Interest::Session(id) => {
                        sessions.insert(id.clone(), subscriber.tx.clone());
                    }
                    Interest::Resources { .. } => {}
                }
            }
        }
        if !sessions.is_empty() {
            for (session, uri) in self.session_subscribers(&update).await {
                if let Some(tx) = sessions.get(&session) {
                    targets.push((tx.clone(), uri));
                }
            }
        }
        for (tx, uri) in targets {
            let outcome = if tx.try_send(uri).is_ok() { "sent" } else { "dropped" };
            metrics::counter!("mcp_resource_updates_total", "outcome" => outcome).increment(1);
        }
    }

    /// Receives every replica's updates until `stop`; reconnects after a Redis failure.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let Some((_, client)) = &self.redis else { return };
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            let connected = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(self.channel()).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                () = stop.cancelled() => return,
                result = tokio::time::timeout(Duration::from_secs(5), connected) => result,
            };
            let mut messages = match pubsub {
                Ok(Ok(pubsub)) => {
                    backoff = Duration::from_millis(100);
                    pubsub.into_on_message()
                }
                Ok(Err(e)) => {
                    failed("pubsub_connect", e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                Err(_) => {
                    failed("pubsub_connect", "timed out");
                    continue;
                }
            };
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = messages.next() => message,
                };
                let Some(message) = message else {
                    failed("pubsub_receive", "connection closed");
                    break;
                };
                match serde_json::from_slice::<Message>(message.get_payload_bytes()) {
                    Ok(Message::Update(update)) => self.deliver(update).await,
                    Ok(Message::SessionClosed { closed_session }) => {
                        if let Some(hook) = self.session_closed.get() {
                            hook(closed_session);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "resource updates: malformed message ignored"),
                }
            }
        }
    }
}
