//! mcp-server: a multi-tenant knowledge-graph memory served over the Model Context Protocol.
//!
//! Layers depend one way only: `http` → `mcp` → `memory` → `storage`, and `http` reaches the
//! database only through `Memory`. `config` is at the bottom and imports nothing of ours; `app`
//! is the composition root that builds each layer from the settings and wires them together, for
//! `cli` and for the tests alike.
//! `scripts/module-cycles.py` (run by `.ci/checks/module-cycles.sh`) enforces the order and
//! that no modules, top-level or siblings within one, import each other in a circle.

pub mod app;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod embed;
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
