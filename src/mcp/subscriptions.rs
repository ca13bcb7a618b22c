//! Resource subscriptions: `subscriptions/listen` (2026-07-28, works statelessly on any
//! replica), `resources/subscribe` in a 2025-11-25 session (delivered on the session's GET
//! stream by whichever replica holds it), and `resources/subscribe` over stdio.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{ResourceUpdatedNotificationParam, SubscriptionFilter, SubscriptionFilterBuilder},
    service::{RequestContext, SubscriptionContext},
};
use serde_json::json;

use super::resources;
use crate::{memory::Tenant, sessions::ResourceUpdates};

/// Subscriptions made over a transport without HTTP sessions (stdio): URI → forwarding task.
#[derive(Clone, Default)]
pub struct PeerSubscriptions(Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>);

impl Drop for PeerSubscriptions {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) == 1 {
            for task in self.0.lock().expect("subscriptions lock").values() {
                task.abort();
            }
        }
    }
}

/// The subset of a listen filter we serve: resource URIs we know, nothing else.
pub fn accepted(requested: &SubscriptionFilter) -> SubscriptionFilter {
    let uris: Vec<String> = requested
        .resource_subscriptions
        .iter()
        .flatten()
        .filter(|uri| resources::key(uri).is_some())
        .cloned()
        .collect();
    if uris.is_empty() {
        SubscriptionFilter::new()
    } else {
        SubscriptionFilterBuilder::default().resource_subscriptions(uris).build()
    }
}

fn keyed(uris: impl IntoIterator<Item = String>) -> HashMap<String, String> {
    uris.into_iter().filter_map(|uri| resources::key(&uri).map(|key| (key, uri))).collect()
}

/// Runs one `subscriptions/listen` request until the client cancels it or the server stops.
pub async fn listen(updates: &Arc<ResourceUpdates>, tenant: &Tenant, context: SubscriptionContext) {
    let uris = keyed(context.accepted().resource_subscriptions.clone().unwrap_or_default());
    let mut subscription = updates.listen(tenant.as_str(), uris);
    loop {
        let uri = tokio::select! {
            () = context.cancelled() => return,
            uri = subscription.updates.recv() => match uri { Some(uri) => uri, None => return },
        };
        if let Err(error) = context.sink().notify_resource_updated(uri).await {
            tracing::debug!(%error, "subscription closed");
            return;
        }
    }
}

fn session_id(context: &RequestContext<RoleServer>) -> Option<String> {
    let parts = context.extensions.get::<http::request::Parts>()?;
    parts.headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn key_of(uri: &str) -> Result<String, McpError> {
    resources::key(uri)
        .ok_or_else(|| McpError::resource_not_found(format!("Resource {uri} not found"), Some(json!({ "uri": uri }))))
}

/// `resources/subscribe`: in an HTTP session, or on a stdio peer.
pub async fn subscribe(
    updates: &Arc<ResourceUpdates>,
    peers: &PeerSubscriptions,
    tenant: &Tenant,
    uri: &str,
    context: &RequestContext<RoleServer>,
) -> Result<(), McpError> {
    let key = key_of(uri)?;
    if let Some(session) = session_id(context) {
        updates.subscribe_session(tenant.as_str(), &session, &key, uri).await;
        return Ok(());
    }
    if context.extensions.get::<http::request::Parts>().is_some() {
        return Err(McpError::invalid_request(
            "resources/subscribe needs a session (MCP_SESSIONS=true); use subscriptions/listen",
            None,
        ));
    }
    let mut subscription = updates.listen(tenant.as_str(), keyed([uri.to_string()]));
    let peer = context.peer.clone();
    let task = tokio::spawn(async move {
        while let Some(uri) = subscription.updates.recv().await {
            if peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_err() {
                return;
            }
        }
    });
    if let Some(previous) = peers.0.lock().expect("subscriptions lock").insert(uri.to_string(), task.abort_handle()) {
        previous.abort();
    }
    Ok(())
}

pub async fn unsubscribe(
    updates: &Arc<ResourceUpdates>,
    peers: &PeerSubscriptions,
    tenant: &Tenant,
    uri: &str,
    context: &RequestContext<RoleServer>,
) -> Result<(), McpError> {
    let key = key_of(uri)?;
    match session_id(context) {
        Some(session) => updates.unsubscribe_session(tenant.as_str(), &session, &key, uri).await,
        None => {
            if let Some(task) = peers.0.lock().expect("subscriptions lock").remove(uri) {
                task.abort();
            }
        }
    }
    Ok(())
}
