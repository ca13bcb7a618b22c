//! Liveness (`/health`: the process serves) and readiness (`/health/ready`: database reachable,
//! schema one this binary serves, storage not full, not draining).

use std::time::Instant;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::AppState;
use crate::storage::SchemaStatus;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.memory.store();
    let timeout = state.settings.db_timeout;
    let started = Instant::now();
    let (database, schema) = match tokio::time::timeout(timeout, store.schema_status()).await {
        Ok(Ok(status)) => {
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let schema = match status {
                SchemaStatus::Current => json!({ "status": "ok" }),
                // A newer release's additive migrations: this binary keeps serving (rolling
                // updates and rollbacks).
                SchemaStatus::AheadAdditive { unknown } => json!({ "status": "ok", "newer_migrations": unknown }),
                SchemaStatus::Behind { pending } => {
                    json!({ "status": "fail", "reason": format!("{pending} migration(s) pending") })
                }
                SchemaStatus::Incompatible { versions } => json!({
                    "status": "fail",
                    "reason": format!("newer migration(s) {versions:?} break this binary"),
                }),
            };
            (json!({ "status": "ok", "latency_ms": latency_ms }), schema)
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database check failed");
            (json!({ "status": "fail", "reason": "unreachable" }), json!({ "status": "unknown" }))
        }
        Err(_) => (json!({ "status": "fail", "reason": "timeout" }), json!({ "status": "unknown" })),
    };
    // Redis is reported, not required: without it serving goes on (per-replica rate limits and
    // sessions), so a Redis outage must not take every replica out of the load balancer.
    let redis = match &state.redis {
        None => json!({ "status": "not_configured" }),
        Some(pool) => match tokio::time::timeout(timeout, ping(pool)).await {
            Ok(Ok(())) => json!({ "status": "ok" }),
            _ => json!({ "status": "degraded", "reason": "unreachable" }),
        },
    };
    // Writes fail for lack of space: a write of readiness's own tells when space is back (this
    // replica, out of rotation, gets no writes to tell it).
    let storage = match store.storage_full() {
        false => json!({ "status": "ok" }),
        true => match tokio::time::timeout(timeout, store.probe_storage()).await {
            Ok(Ok(())) => json!({ "status": "ok" }),
            _ => json!({ "status": "fail", "reason": "full" }),
        },
    };
    let draining = state.is_draining();
    let ok = !draining && database["status"] == "ok" && schema["status"] == "ok" && storage["status"] == "ok";
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {
            "database": database,
            "schema": schema,
            "storage": storage,
            "redis": redis,
            "shutdown": if draining { json!({ "status": "fail", "reason": "draining" }) } else { json!({ "status": "ok" }) },
        }
    });
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

async fn ping(pool: &crate::ratelimit::RedisPool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = pool.get().await?;
    let _: String = redis::cmd("PING").query_async(&mut *conn).await?;
    Ok(())
}
