//! The integration tests, one binary with a module per concern. Each test starts the real server
//! through `Application::build` (`common::spawn_app`) on a fresh database, or runs the binary, and
//! talks to it as clients do.

#[macro_use]
mod common;

mod auth;
mod backup;
mod backup_times;
mod cli;
mod concurrency;
mod differential;
mod graph_cache;
mod http;
mod jsonrpc;
mod neighbours;
mod outages;
mod properties;
mod ratelimit;
mod replicas;
mod replies;
mod search_index;
mod semantic;
mod sessions;
mod sqlite_writer;
mod subscriptions;
mod time;
mod time_resources;
mod tools;
mod tracing;
mod upgrades;
