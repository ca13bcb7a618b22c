//! Input limits; every error names the field and the limit it broke.

use super::{MemoryError, Relation, Result};
use crate::config::Settings;

/// Size limits on input, each named in the error it causes, and on what the memory layer holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_name_bytes: usize,
    pub max_observation_bytes: usize,
    pub max_batch: usize,
    /// Most memory (bytes, estimated) and entities the graph cache holds across tenants; either
    /// 0 reads everything from the database.
    pub graph_cache_bytes: usize,
    pub graph_cache_entities: usize,
    /// Largest reply of a graph read (read_graph, search_nodes, the graph resource), in bytes.
    pub max_reply_bytes: usize,
    /// How long what stopped being true is kept for reads by time (`asOf`).
    pub history_retention: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name_bytes: 512,
            max_observation_bytes: 16_384,
            max_batch: 1_000,
            graph_cache_bytes: 256 * 1024 * 1024,
            graph_cache_entities: usize::MAX,
            max_reply_bytes: 4 * 1024 * 1024,
            history_retention: std::time::Duration::from_secs(30 * 86_400),
        }
    }
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Self {
        Limits {
            max_name_bytes: settings.max_name_bytes,
            max_observation_bytes: settings.max_observation_bytes,
            max_batch: settings.max_batch,
            graph_cache_bytes: usize::try_from(settings.graph_cache_bytes).unwrap_or(usize::MAX),
            graph_cache_entities: settings.graph_cache_entities.unwrap_or(usize::MAX),
            max_reply_bytes: settings.max_reply_bytes,
            history_retention: settings.history_retention,
        }
    }
}

/// Input limits; each error names the field and the limit.
pub(super) struct Check(pub(super) Limits);

impl Check {
    pub(super) fn batch(&self, field: &str, len: usize) -> Result<()> {
        if len > self.0.max_batch {
            return Err(invalid(field, format!("at most {} items per call (MAX_BATCH), got {len}", self.0.max_batch)));
        }
        Ok(())
    }

    pub(super) fn text(&self, field: &str, value: &str, max: usize) -> Result<()> {
        if value.len() > max {
            return Err(invalid(field, format!("at most {max} bytes, got {}", value.len())));
        }
        Ok(())
    }

    pub(super) fn name(&self, field: &str, value: &str) -> Result<()> {
        if value.len() > self.0.max_name_bytes {
            return Err(invalid(
                field,
                format!("at most {} bytes (MAX_NAME_BYTES), got {}", self.0.max_name_bytes, value.len()),
            ));
        }
        Ok(())
    }

    pub(super) fn names(&self, field: &str, names: &[String]) -> Result<()> {
        self.batch(field, names.len())?;
        names.iter().enumerate().try_for_each(|(i, n)| self.name(&format!("{field}[{i}]"), n))
    }

    pub(super) fn observations(&self, field: &str, observations: &[String]) -> Result<()> {
        self.batch(field, observations.len())?;
        for (i, o) in observations.iter().enumerate() {
            if o.len() > self.0.max_observation_bytes {
                return Err(invalid(
                    &format!("{field}[{i}]"),
                    format!("at most {} bytes (MAX_OBSERVATION_BYTES), got {}", self.0.max_observation_bytes, o.len()),
                ));
            }
        }
        Ok(())
    }

    /// Items naming an entity and listing observations (add_observations' `observations`,
    /// delete_observations' `deletions`): `{field}[i].entityName` and `{field}[i].{list}`.
    pub(super) fn entity_observations<'a>(
        &self,
        field: &str,
        list: &str,
        items: impl ExactSizeIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<()> {
        self.batch(field, items.len())?;
        for (i, (entity, observations)) in items.enumerate() {
            self.name(&format!("{field}[{i}].entityName"), entity)?;
            self.observations(&format!("{field}[{i}].{list}"), observations)?;
        }
        Ok(())
    }

    pub(super) fn relations(&self, relations: &[Relation]) -> Result<()> {
        self.batch("relations", relations.len())?;
        for (i, r) in relations.iter().enumerate() {
            self.name(&format!("relations[{i}].from"), &r.from)?;
            self.name(&format!("relations[{i}].to"), &r.to)?;
            self.name(&format!("relations[{i}].relationType"), &r.relation_type)?;
        }
        Ok(())
    }
}

/// Text a write stores (or adds to) may not contain NUL: PostgreSQL's text cannot hold it, and
/// one rule on both backends keeps every export importable on either.
pub(super) fn stored(field: &str, value: &str) -> Result<()> {
    match value.contains('\0') {
        true => Err(invalid(field, "must not contain NUL (U+0000)".into())),
        false => Ok(()),
    }
}

/// Each item of a stored list, as `field[i]`.
pub(super) fn stored_all(field: &str, values: &[String]) -> Result<()> {
    values.iter().enumerate().try_for_each(|(i, v)| stored(&format!("{field}[{i}]"), v))
}

/// Whether text can be stored at all: what contains NUL matches no stored text, so reads and
/// deletions drop it instead of asking the database (PostgreSQL refuses it as a parameter).
pub(super) fn storable(value: &str) -> bool {
    !value.contains('\0')
}

fn invalid(field: &str, reason: String) -> MemoryError {
    MemoryError::Invalid { field: field.to_string(), reason }
}
