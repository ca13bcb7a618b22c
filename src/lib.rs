//! mcp-server: a multi-tenant knowledge-graph memory served over the Model Context Protocol.
//!
//! Layers depend one way only: `http` → `mcp` → `memory` → `storage`.
//! `cli` and `telemetry` sit at the edge and wire them together.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod http;
pub mod mcp;
pub mod memory;
pub mod quota;
pub mod ratelimit;
pub mod redis;
pub mod sessions;
pub mod storage;
pub mod telemetry;
pub mod transfer;

pub use http::{AppState, app};
