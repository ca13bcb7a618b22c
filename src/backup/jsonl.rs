//! The portable format (PostgreSQL's backups): JSON lines. A header (`Meta` without counts and
//! digest), one line per stored row (`RowLine`, in the stable order), then a trailer with each
//! tenant's counts and the SHA-256 of every byte before it. Every line ends with `\n`.

use std::{
    collections::BTreeMap,
    io::{BufRead, Write},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::{self, Counts, Meta, RowLine};
use crate::storage::GraphRows;

/// How every JSON-lines backup begins (`Meta`'s first field): what restore detects it by.
pub const MAGIC: &[u8] = b"{\"format\":\"mcp-server-backup\"";
const TRAILER: &[u8] = b"{\"type\":\"end\"";

#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    #[serde(rename = "type")]
    kind: String,
    counts: BTreeMap<String, Counts>,
    sha256: String,
}

/// Writes `graph` with `meta` (its counts and digest are left out: the trailer has them).
pub fn write(out: &mut impl Write, meta: &Meta, graph: &GraphRows) -> std::io::Result<()> {
    let mut hash = Sha256::new();
    let mut line = |out: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
        hash.update(bytes);
        hash.update(b"\n");
        out.write_all(bytes)?;
        out.write_all(b"\n")
    };
    let header = Meta { counts: None, sha256: None, ..meta.clone() };
    line(out, &serde_json::to_vec(&header)?)?;
    for row in format::row_lines(graph, meta.format_version) {
        line(out, &row)?;
    }
    let trailer = Trailer { kind: "end".into(), counts: format::counts(graph), sha256: hex::encode(hash.finalize()) };
    out.write_all(&serde_json::to_vec(&trailer)?)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A bad line: its number (1-based) and what is wrong with it.
pub type Bad = (usize, String);

/// Reads and checks the whole file: the header, every line, the trailer's digest and counts.
pub fn read(reader: impl BufRead) -> Result<(Meta, GraphRows), Bad> {
    let mut hash = Sha256::new();
    let mut lines = reader.split(b'\n').enumerate().map(|(i, line)| (i + 1, line));
    let io = |n: usize| move |e: std::io::Error| (n, format!("cannot read: {e}"));
    let (meta, mut graph) = match lines.next() {
        Some((n, line)) => {
            let line = line.map_err(io(n))?;
            let meta: Meta = serde_json::from_slice(&line).map_err(|e| (n, format!("not a backup header: {e}")))?;
            format::check_meta(&meta).map_err(|reason| (n, reason))?;
            hash.update(&line);
            hash.update(b"\n");
            (meta, GraphRows::new())
        }
        None => return Err((1, "empty file".into())),
    };
    let mut last = 1;
    for (n, line) in lines.by_ref() {
        let line = line.map_err(io(n))?;
        last = n;
        if line.starts_with(TRAILER) {
            let trailer: Trailer = serde_json::from_slice(&line).map_err(|e| (n, format!("bad trailer: {e}")))?;
            if hex::encode(hash.clone().finalize()) != trailer.sha256 {
                return Err((n, "the SHA-256 of the lines before the trailer does not match it".into()));
            }
            let counts = format::counts(&graph);
            if counts != trailer.counts {
                return Err((n, format!("the trailer's counts {:?} are not the rows' {counts:?}", trailer.counts)));
            }
            let mut header_tenants = meta.tenants.clone();
            header_tenants.sort();
            if header_tenants != counts.keys().cloned().collect::<Vec<_>>() {
                return Err((1, "the header's tenants are not those of the rows".into()));
            }
            if let Some((n, _)) = lines.find(|(_, l)| !matches!(l, Ok(l) if l.trim_ascii().is_empty())) {
                return Err((n, "a line after the trailer".into()));
            }
            return Ok((meta, graph));
        }
        let row: RowLine = serde_json::from_slice(&line).map_err(|e| (n, e.to_string()))?;
        hash.update(&line);
        hash.update(b"\n");
        format::push(&mut graph, row);
    }
    Err((last, "the file ends before its trailer line: it is truncated".into()))
}
