//! Import and export in the reference server's JSONL format (its MEMORY_FILE_PATH file):
//! entities first, then relations, one JSON object per line, `type` first. `export --with-time`
//! adds each row's times to its line (`createdAt`, `updatedAt`, `observationsCreatedAt`), and an
//! import restores them for the rows it creates.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::memory::{
    Entity, Memory, MemoryError, ObservationAddition, PageRequest, Relation, Tenant, TimeQuery, entity_with_times,
    parse_time, relation_with_time,
};

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

/// The times on a line of an export with times.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineTimes {
    created_at: Option<String>,
    observations_created_at: Option<Vec<String>>,
}

/// A file's times, in the order of its entities and relations (`None` where a line had none);
/// an entity's observations' times in the order of its observations.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileTimes {
    pub entities: Vec<(Option<i64>, Vec<i64>)>,
    pub relations: Vec<Option<i64>>,
}

/// A line's times, checked: each an RFC 3339 time, one per observation.
fn line_times(line: &[u8], observations: Option<usize>) -> Result<(Option<i64>, Vec<i64>), String> {
    let times: LineTimes = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let time =
        |field: &str, text: &str| parse_time(text).ok_or_else(|| format!("{field}: `{text}` is not an RFC 3339 time"));
    let created = times.created_at.as_deref().map(|t| time("createdAt", t)).transpose()?;
    let each = times.observations_created_at.unwrap_or_default();
    if let Some(count) = observations
        && !each.is_empty()
        && each.len() != count
    {
        return Err(format!("observationsCreatedAt: {} times for {count} observations", each.len()));
    }
    let each = each.iter().enumerate().map(|(i, t)| time(&format!("observationsCreatedAt[{i}]"), t));
    Ok((created, each.collect::<Result<_, _>>()?))
}

/// Parses the whole file first, so a bad line imports nothing. Lines are bytes until parsed, so
/// one that is not UTF-8 is reported with its number like any other bad line.
pub fn parse(reader: impl BufRead) -> Result<(Vec<Entity>, Vec<Relation>), TransferError> {
    parse_with_times(reader).map(|(entities, relations, _)| (entities, relations))
}

/// As `parse`, with the times the lines carry.
pub fn parse_with_times(reader: impl BufRead) -> Result<(Vec<Entity>, Vec<Relation>, FileTimes), TransferError> {
    let (mut entities, mut relations, mut times) = (Vec::new(), Vec::new(), FileTimes::default());
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
        let bad = |reason| TransferError::Parse { line: i + 1, reason };
        match checked.map_err(bad)? {
            Line::Entity(e) => {
                times.entities.push(line_times(line, Some(e.observations.len())).map_err(bad)?);
                entities.push(e);
            }
            Line::Relation(r) => {
                times.relations.push(line_times(line, None).map_err(bad)?.0);
                relations.push(r);
            }
        }
    }
    Ok((entities, relations, times))
}

/// Imports in batches; idempotent: existing entities gain only the observations they lack,
/// existing relations are skipped. `progress` is called with the number of items done.
pub async fn import(
    memory: &Memory,
    tenant: &Tenant,
    entities: Vec<Entity>,
    relations: Vec<Relation>,
    progress: impl FnMut(usize),
) -> Result<ImportSummary, TransferError> {
    import_with_times(memory, tenant, entities, relations, &FileTimes::default(), progress).await
}

/// As `import`; the rows it creates take the file's times where their lines have them.
pub async fn import_with_times(
    memory: &Memory,
    tenant: &Tenant,
    entities: Vec<Entity>,
    relations: Vec<Relation>,
    times: &FileTimes,
    mut progress: impl FnMut(usize),
) -> Result<ImportSummary, TransferError> {
    let batch = memory.limits().max_batch;
    let mut summary = ImportSummary::default();
    for (i, chunk) in entities.chunks(batch).enumerate() {
        let created = memory.create_entities(tenant, chunk.to_vec()).await?;
        summary.entities += created.len();
        let additions = chunk
            .iter()
            .map(|e| ObservationAddition { entity_name: e.name.clone(), contents: e.observations.clone() })
            .collect();
        let added = memory.add_observations(tenant, additions).await?;
        let chunk_times = times.entities.get(i * batch..).unwrap_or_default();
        // Each content's first time on its entity's lines, as the first line to add it counts.
        let mut of: HashMap<(&str, &str), i64> = HashMap::new();
        for (e, (_, each)) in chunk.iter().zip(chunk_times) {
            for (content, t) in e.observations.iter().zip(each) {
                of.entry((e.name.as_str(), content.as_str())).or_insert(*t);
            }
        }
        let first: HashMap<&str, i64> =
            chunk.iter().zip(chunk_times).rev().filter_map(|(e, (t, _))| Some((e.name.as_str(), (*t)?))).collect();
        let new_entities: Vec<Value> =
            created.iter().filter_map(|e| Some(json!([e.name, first.get(e.name.as_str())?]))).collect();
        let new_observations: Vec<Value> = (created.iter().map(|e| (&e.name, &e.observations)))
            .chain(added.iter().map(|a| (&a.entity_name, &a.added_observations)))
            .flat_map(|(name, contents)| contents.iter().map(move |c| (name, c)))
            .filter_map(|(name, c)| Some(json!([name, c, of.get(&(name.as_str(), c.as_str()))?])))
            .collect();
        if !new_entities.is_empty() || !new_observations.is_empty() {
            let input = json!({ "entities": new_entities, "observations": new_observations, "relations": [] });
            memory.set_created(tenant, &input).await?;
        }
        progress(chunk.len());
    }
    for (i, chunk) in relations.chunks(batch).enumerate() {
        let created = memory.create_relations(tenant, chunk.to_vec()).await?;
        summary.relations += created.len();
        let chunk_times = times.relations.get(i * batch..).unwrap_or_default();
        let of: HashMap<&Relation, i64> = chunk.iter().zip(chunk_times).filter_map(|(r, t)| Some((r, (*t)?))).collect();
        let new: Vec<Value> =
            (created.iter()).filter_map(|r| Some(json!([r.from, r.to, r.relation_type, of.get(r)?]))).collect();
        if !new.is_empty() {
            memory.set_created(tenant, &json!({ "entities": [], "observations": [], "relations": new })).await?;
        }
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

/// An export line: its kind first, as the reference's file puts it, then its fields.
fn typed(kind: &str, fields: serde_json::Map<String, Value>) -> Value {
    let mut line = serde_json::Map::with_capacity(fields.len() + 1);
    line.insert("type".into(), kind.into());
    line.extend(fields);
    Value::Object(line)
}

/// As `export`, each line with its row's times (read in pages, as the present graph).
pub async fn export_with_times(
    memory: &Memory,
    tenant: &Tenant,
    mut out: impl Write,
) -> Result<ImportSummary, TransferError> {
    let mut summary = ImportSummary::default();
    let mut write_line = |out: &mut dyn Write, line: &Value| -> std::io::Result<()> {
        if summary.entities + summary.relations > 0 {
            out.write_all(b"\n")?;
        }
        match line["type"] == "entity" {
            true => summary.entities += 1,
            false => summary.relations += 1,
        }
        serde_json::to_writer(out, line).map_err(std::io::Error::from)
    };
    let mut relations = Vec::new();
    let time = TimeQuery { include: true, ..TimeQuery::default() };
    let mut request = PageRequest { limit: Some(1000), cursor: None };
    loop {
        let page = memory.read_graph_at(tenant, &request, &time).await?;
        let times = page.times.unwrap_or_default();
        for (e, t) in page.graph.entities.into_iter().zip(times.entities) {
            write_line(&mut out, &typed("entity", entity_with_times(e, t)))?;
        }
        for (r, t) in page.graph.relations.into_iter().zip(times.relations) {
            relations.push(typed("relation", relation_with_time(r, t)));
        }
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    for relation in &relations {
        write_line(&mut out, relation)?;
    }
    out.flush()?;
    Ok(summary)
}
