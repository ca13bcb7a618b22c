//! Liveness (`/health`: the process serves) and readiness (`/health/ready`: database reachable,
//! schema one this binary serves, storage not full, not draining).

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::AppState;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let timeout = state.settings.db_timeout;
    let health = state.memory.health(timeout).await;
    let database = match health.database {
        Ok(latency) => json!({ "status": "ok", "latency_ms": latency.as_secs_f64() * 1000.0 }),
        Err(reason) => json!({ "status": "fail", "reason": reason }),
    };
    let schema = match health.schema {
        Some(Ok(newer)) if newer.is_empty() => json!({ "status": "ok" }),
        Some(Ok(newer)) => json!({ "status": "ok", "newer_migrations": newer }),
        Some(Err(reason)) => json!({ "status": "fail", "reason": reason }),
        None => json!({ "status": "unknown" }),
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
    let storage = match health.storage {
        Ok(()) => json!({ "status": "ok" }),
        Err(reason) => json!({ "status": "fail", "reason": reason }),
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

async fn ping(pool: &crate::redis::RedisPool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = pool.get().await?;
    let _: String = redis::cmd("PING").query_async(&mut *conn).await?;
    Ok(())
}
