//! The lowercased text of every entity of a graph (name, type, observations) in one buffer, so a
//! search is one memmem pass over contiguous memory instead of a walk over thousands of small
//! strings (which cost more than SQLite's trigram index at 10k entities).

use std::collections::HashMap;

use memchr::memmem::Finder;

/// Ends every field: a needle without it cannot match across two fields.
pub const SEPARATOR: char = '\0';
const DEAD: i64 = i64::MIN;
/// Compaction waits for this much garbage, so small graphs do not compact on every write.
const COMPACT_AFTER_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub struct TextIndex {
    text: Vec<u8>,
    /// (start offset, entity id or DEAD), in buffer order; an entity's text runs to the next start.
    segments: Vec<(usize, i64)>,
    /// The segment of each entity.
    by_id: HashMap<i64, usize>,
    dead_bytes: usize,
}

impl TextIndex {
    /// Sets the entity's text, replacing what it had: its old text becomes garbage.
    pub fn set<'a>(&mut self, id: i64, fields: impl IntoIterator<Item = &'a str>) {
        self.remove(id);
        self.by_id.insert(id, self.segments.len());
        self.segments.push((self.text.len(), id));
        for field in fields {
            self.text.extend_from_slice(field.as_bytes());
            self.text.push(SEPARATOR as u8);
        }
    }

    pub fn remove(&mut self, id: i64) {
        let Some(segment) = self.by_id.remove(&id) else { return };
        self.segments[segment].1 = DEAD;
        self.dead_bytes += self.end(segment) - self.segments[segment].0;
        if self.dead_bytes > COMPACT_AFTER_BYTES && self.dead_bytes > self.text.len() / 2 {
            self.compact();
        }
    }

    fn end(&self, segment: usize) -> usize {
        self.segments.get(segment + 1).map_or(self.text.len(), |&(start, _)| start)
    }

    fn compact(&mut self) {
        let mut text = Vec::with_capacity(self.text.len() - self.dead_bytes);
        let mut segments = Vec::with_capacity(self.by_id.len());
        for (i, &(start, id)) in self.segments.iter().enumerate() {
            if id != DEAD {
                self.by_id.insert(id, segments.len());
                segments.push((text.len(), id));
                text.extend_from_slice(&self.text[start..self.end(i)]);
            }
        }
        (self.text, self.segments, self.dead_bytes) = (text, segments, 0);
    }

    /// Ids (in no particular order) of the entities with a field containing `needle`, which must
    /// not contain SEPARATOR.
    pub fn matching(&self, needle: &str) -> Vec<i64> {
        debug_assert!(!needle.contains(SEPARATOR));
        let finder = Finder::new(needle.as_bytes());
        let mut ids = Vec::new();
        let mut from = 0;
        while let Some(at) = finder.find(&self.text[from..]).map(|pos| from + pos) {
            let segment = self.segments.partition_point(|&(start, _)| start <= at) - 1;
            if self.segments[segment].1 != DEAD {
                ids.push(self.segments[segment].1);
            }
            from = self.end(segment); // one hit per entity is enough
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
        ids.sort_unstable();
        ids
    }

    #[test]
    fn matches_within_fields_only_and_survives_rewrites_and_compaction() {
        let mut index = TextIndex::default();
        let filler = "x".repeat(1000);
        // 200 entities of ~2 kB: rewriting and removing most of them passes the compaction threshold.
        for id in 0..200 {
            index.set(id, [format!("name{id}").as_str(), "type", &filler]);
        }
        index.set(7, ["ab", "cd"]);
        assert_eq!(index.matching("ab"), [7]);
        assert!(index.matching("bc").is_empty(), "a match across two fields");
        assert!(index.matching("dn").is_empty(), "a match across two entities");
        for id in 10..190 {
            index.remove(id);
        }
        // 200 kB were written and 180 kB removed: compaction kept the garbage under its bounds.
        assert!(index.text.len() < 100 * 1024, "{} bytes", index.text.len());
        assert!(index.dead_bytes <= COMPACT_AFTER_BYTES.max(index.text.len() / 2));
        index.set(3, ["renamed", "type"]);
        assert_eq!(sorted(index.matching("name1")), [1, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199]);
        assert_eq!(index.matching("renamed"), [3]);
        assert!(index.matching("name3").is_empty());
        assert_eq!(sorted(index.matching("xxx")).len(), 18, "entities 0..10 but 3 and 7, and 190..200");
    }
}
