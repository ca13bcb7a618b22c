//! Import and export in the reference server's JSONL format (its MEMORY_FILE_PATH file):
//! entities first, then relations, one JSON object per line, `type` first.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::memory::{Entity, Memory, MemoryError, ObservationAddition, PageRequest, Relation, Tenant};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Entity(Entity),
    Relation(Relation),
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub entities: usize,
    pub relations: usize,
}

/// Parses the whole file first, so a bad line imports nothing. Lines are bytes until parsed, so
/// one that is not UTF-8 is reported with its number like any other bad line.
pub fn parse(reader: impl BufRead) -> Result<(Vec<Entity>, Vec<Relation>), TransferError> {
    let (mut entities, mut relations) = (Vec::new(), Vec::new());
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        let parsed = serde_json::from_slice::<Line>(line).map_err(|e| e.to_string());
        let nul = |field: &str, text: &str| match text.contains('\0') {
            true => Err(format!("{field}: must not contain NUL (U+0000)")),
            false => Ok(()),
        };
        // The rule every write applies (`memory::limits::stored`), checked before anything is written.
        let checked = parsed.and_then(|parsed| {
            match &parsed {
                Line::Entity(e) => {
                    nul("name", &e.name)?;
                    nul("entityType", &e.entity_type)?;
                    e.observations.iter().enumerate().try_for_each(|(i, o)| nul(&format!("observations[{i}]"), o))?
                }
                Line::Relation(r) => {
                    nul("from", &r.from)?;
                    nul("to", &r.to)?;
                    nul("relationType", &r.relation_type)?
                }
            }
            Ok(parsed)
        });
        match checked {
            Ok(Line::Entity(e)) => entities.push(e),
            Ok(Line::Relation(r)) => relations.push(r),
            Err(reason) => return Err(TransferError::Parse { line: i + 1, reason }),
        }
    }
    Ok((entities, relations))
}

/// Imports in batches; idempotent: existing entities gain only the observations they lack,
/// existing relations are skipped. `progress` is called with the number of items done.
pub async fn import(
    memory: &Memory,
    tenant: &Tenant,
    entities: Vec<Entity>,
    relations: Vec<Relation>,
    mut progress: impl FnMut(usize),
) -> Result<ImportSummary, TransferError> {
    let batch = memory.limits().max_batch;
    let mut summary = ImportSummary::default();
    for chunk in entities.chunks(batch) {
        summary.entities += memory.create_entities(tenant, chunk.to_vec()).await?.len();
        let additions = chunk
            .iter()
            .map(|e| ObservationAddition { entity_name: e.name.clone(), contents: e.observations.clone() })
            .collect();
        memory.add_observations(tenant, additions).await?;
        progress(chunk.len());
    }
    for chunk in relations.chunks(batch) {
        summary.relations += memory.create_relations(tenant, chunk.to_vec()).await?.len();
        progress(chunk.len());
    }
    Ok(summary)
}

/// Writes the tenant's graph, a page at a time, in the reference's line format: lines joined by
/// `\n` with none after the last, as the reference writes its file, so round trips are identical.
pub async fn export(memory: &Memory, tenant: &Tenant, mut out: impl Write) -> Result<ImportSummary, TransferError> {
    let mut summary = ImportSummary::default();
    let mut write_line = |out: &mut dyn Write, line: &Line| -> std::io::Result<()> {
        if summary.entities + summary.relations > 0 {
            out.write_all(b"\n")?;
        }
        match line {
            Line::Entity(_) => summary.entities += 1,
            Line::Relation(_) => summary.relations += 1,
        }
        serde_json::to_writer(out, line).map_err(std::io::Error::from)
    };
    let mut relations = Vec::new();
    let mut request = PageRequest { limit: Some(1000), cursor: None };
    loop {
        let page = memory.read_graph(tenant, &request).await?;
        for entity in page.graph.entities {
            write_line(&mut out, &Line::Entity(entity))?;
        }
        relations.extend(page.graph.relations);
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    for relation in relations {
        write_line(&mut out, &Line::Relation(relation))?;
    }
    out.flush()?;
    Ok(summary)
}
