//! The session manager: rmcp's local manager plus what a replicated deployment needs: session
//! ids with 256 random bits (rmcp's own are UUIDv4, 122 bits), resource updates injected into a
//! session's GET stream (and logged in the event store so a resumed stream replays them), a
//! quota slot per session held (MAX_SESSIONS, MAX_SESSIONS_PER_TENANT), and gauges of sessions
//! and SSE streams.

use std::{
    collections::{HashMap, HashSet},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use futures::{Stream, StreamExt, future};
use rmcp::{
    model::{
        ClientJsonRpcMessage, ClientNotification, JsonRpcMessage, ResourceUpdatedNotification,
        ResourceUpdatedNotificationParam, ServerJsonRpcMessage, ServerNotification,
    },
    transport::streamable_http_server::{
        SessionId, SessionManager,
        session::{
            EventStore, RestoreOutcome, ServerSseMessage,
            local::{LocalSessionManager, LocalSessionManagerError},
        },
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ResourceUpdates;
use crate::quota::{Quota, Slot};

pub struct SharedSessionManager {
    inner: Arc<LocalSessionManager>,
    updates: Option<Arc<ResourceUpdates>>,
    /// The sessions this replica may hold, all and per tenant.
    pub quota: Arc<Quota>,
    /// The slot of each session held, given back when the session closes.
    slots: Mutex<HashMap<SessionId, Slot>>,
    /// Sessions restored from the store whose initialize replay has not finished. rmcp makes
    /// concurrent requests wait for a restore only while `has_session` is false, so these read as
    /// absent: a request that reached the new worker before its replay made it quit (HTTP 500).
    restoring: Mutex<HashSet<SessionId>>,
}

impl SharedSessionManager {
    pub fn new(inner: LocalSessionManager, updates: Option<Arc<ResourceUpdates>>, quota: Arc<Quota>) -> Self {
        let inner = Arc::new(inner);
        if let Some(updates) = &updates {
            // A DELETE on another replica ends this replica's copy of the session too.
            let local = Arc::downgrade(&inner);
            updates.on_session_closed(move |id| {
                if let Some(local) = local.upgrade() {
                    tokio::spawn(async move { local.close_session(&SessionId::from(id)).await });
                }
            });
        }
        SharedSessionManager { inner, updates, quota, slots: Mutex::default(), restoring: Mutex::default() }
    }

    /// Binds a slot taken for a request that created (or restored) session `id`. Inserted before
    /// the check, as `close_session` removes the session before its slot: whichever runs second
    /// sees the other's change, so no slot outlives its session.
    pub async fn adopt(&self, id: &SessionId, slot: Slot) {
        if self.slots.lock().expect("session slots").contains_key(id) {
            return;
        }
        self.slots.lock().expect("session slots").insert(id.clone(), slot);
        if !self.inner.has_session(id).await.unwrap_or(false) {
            self.slots.lock().expect("session slots").remove(id);
        }
    }

    /// Sessions this replica holds (for the gauge; `None` while the map is being written).
    pub fn local_sessions(&self) -> Option<usize> {
        self.inner.sessions.try_read().ok().map(|s| s.len())
    }
}

/// Counts an open SSE stream by kind for as long as it lives.
struct Counted<S> {
    inner: Pin<Box<S>>,
    kind: &'static str,
}

fn counted<S>(inner: S, kind: &'static str) -> Counted<S> {
    metrics::gauge!("mcp_sse_streams", "kind" => kind).increment(1.0);
    Counted { inner: Box::pin(inner), kind }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        metrics::gauge!("mcp_sse_streams", "kind" => self.kind).decrement(1.0);
    }
}

impl<S: Stream> Stream for Counted<S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

fn resource_updated(uri: String) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::notification(ServerNotification::ResourceUpdatedNotification(
        ResourceUpdatedNotification::new(ResourceUpdatedNotificationParam::new(uri)),
    ))
}

impl SessionManager for SharedSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let id: SessionId = hex::encode(rand::random::<[u8; 32]>()).into();
        // Restoring an id nobody holds creates a session with that id and the event store.
        match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => Ok((id, transport)),
            _ => Err(LocalSessionManagerError::SessionNotFound(id)),
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let initialized = self.inner.initialize_session(id, message).await;
        if initialized.is_err() {
            self.restoring.lock().expect("restoring sessions").remove(id);
        }
        initialized
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if self.restoring.lock().expect("restoring sessions").contains(id) {
            return Ok(false);
        }
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        self.restoring.lock().expect("restoring sessions").remove(id);
        self.slots.lock().expect("session slots").remove(id);
        closed?;
        // This runs for a client's DELETE and also when this replica's copy of a session stops
        // (shutdown, idle): a shared session lives on elsewhere and is ended everywhere by the
        // store's delete; a replica-local one ends here.
        if let Some(updates) = self.updates.as_ref().filter(|u| !u.is_shared()) {
            updates.forget_session(id).await;
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(counted(self.inner.create_stream(id, message).await?, "request"))
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        // The replay ends with `notifications/initialized`, queued before any later request.
        let initialized = matches!(&message, JsonRpcMessage::Notification(n) if matches!(n.notification, ClientNotification::InitializedNotification(_)));
        let accepted = self.inner.accept_message(id, message).await;
        if initialized {
            self.restoring.lock().expect("restoring sessions").remove(id);
        }
        accepted
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        let Some(updates) = &self.updates else {
            return Ok(counted(stream.left_stream(), "standalone"));
        };
        let mut subscription = updates.attach_session(id);
        let (tx, rx) = mpsc::channel::<ServerSseMessage>(16);
        let (event_store, stream_id) = (self.inner.event_store(), format!("{id}:common"));
        tokio::spawn(async move {
            loop {
                let uri = tokio::select! {
                    () = tx.closed() => break,
                    uri = subscription.updates.recv() => match uri { Some(uri) => uri, None => break },
                };
                let event = logged(event_store.as_deref(), &stream_id, resource_updated(uri)).await;
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        // The merged stream ends when the session's own stream ends (replaced, closed, drained).
        let own = stream.map(Some).chain(futures::stream::iter([None]));
        let merged = futures::stream::select(own, ReceiverStream::new(rx).map(Some))
            .take_while(|m| future::ready(m.is_some()))
            .filter_map(future::ready);
        Ok(counted(merged.right_stream(), "standalone"))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(counted(self.inner.resume(id, last_event_id).await?, "resumed"))
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        // Marked before the worker exists, so no request sees it present before its replay.
        self.restoring.lock().expect("restoring sessions").insert(id.clone());
        let outcome = self.inner.restore_session(id.clone()).await;
        if !matches!(outcome, Ok(RestoreOutcome::Restored(_))) {
            self.restoring.lock().expect("restoring sessions").remove(&id);
        }
        outcome
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

/// An event for the session's common stream, with an id from the event store when there is one
/// (so `Last-Event-ID` replays it on any replica).
async fn logged(store: Option<&dyn EventStore>, stream_id: &str, message: ServerJsonRpcMessage) -> ServerSseMessage {
    let mut event = ServerSseMessage::from_message(message);
    if let Some(store) = store {
        match store.store_event(stream_id, &event).await {
            Ok(id) => event.event_id = Some(id),
            Err(error) => tracing::warn!(%error, "resource update not logged for resumption"),
        }
    }
    event
}
