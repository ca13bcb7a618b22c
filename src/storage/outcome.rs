//! What a write reports, on either backend: its own module so that the backends' writes (`batch`,
//! `postgres`) and the dispatch over them (`writes`) share it without importing each other.

use std::collections::HashSet;

/// The tenant's graph version when a write began and once its changes were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub before: i64,
    pub after: i64,
}

/// What add_observations did: the first entity named that does not exist (then nothing was
/// added), else the (entity, content) pairs added.
pub enum Added {
    Missing(String),
    Inserted(HashSet<(String, String)>),
}
