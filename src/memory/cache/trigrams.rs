//! The trigram postings of every cached entity's lowercased text (name, type, observations), so a
//! search reads the postings of the query's trigrams and costs what it finds, not the size of the
//! graph. Trigrams never span two fields, so a three-byte query is answered by its postings alone;
//! a longer one is a candidate set to verify, and a shorter one is left to a scan (it matches most
//! entities anyway).
//!
//! Bytes, not characters: a UTF-8 string contains another exactly when its bytes do.

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

/// Three bytes of text, packed.
type Trigram = u32;

/// What `TrigramIndex::candidates` found.
pub enum Candidates {
    /// The query is too short to look up: every entity is a candidate.
    Scan,
    /// Entity ids in ascending order; `exact` when each is a match (a three-byte query).
    Ids { ids: Vec<i64>, exact: bool },
}

#[derive(Default)]
pub struct TrigramIndex {
    postings: FxHashMap<Trigram, RoaringBitmap>,
    /// The entity id of each slot; a removed entity's slot is reused.
    ids: Vec<i64>,
    slots: FxHashMap<i64, u32>,
    free: Vec<u32>,
}

/// The distinct trigrams of `fields`, sorted.
pub fn trigrams<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<Trigram> {
    let mut all: Vec<Trigram> = fields
        .into_iter()
        .flat_map(|field| field.as_bytes().windows(3).map(|w| u32::from_be_bytes([0, w[0], w[1], w[2]])))
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

impl TrigramIndex {
    /// An entity not in the index yet, with its fields.
    pub fn insert<'a>(&mut self, id: i64, fields: impl IntoIterator<Item = &'a str>) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.ids[slot as usize] = id;
                slot
            }
            None => {
                self.ids.push(id);
                u32::try_from(self.ids.len() - 1).expect("fewer than 2^32 cached entities")
            }
        };
        self.slots.insert(id, slot);
        self.add(slot, &trigrams(fields));
    }

    /// Fields the entity gained (observations added).
    pub fn extend<'a>(&mut self, id: i64, fields: impl IntoIterator<Item = &'a str>) {
        if let Some(&slot) = self.slots.get(&id) {
            self.add(slot, &trigrams(fields));
        }
    }

    /// The entity's fields changed from `before` (its trigrams, as `trigrams` gives them) to
    /// `after`: the trigrams it no longer has are dropped.
    pub fn replace<'a>(&mut self, id: i64, before: &[Trigram], after: impl IntoIterator<Item = &'a str>) {
        let Some(&slot) = self.slots.get(&id) else { return };
        let after = trigrams(after);
        let gone: Vec<Trigram> = before.iter().filter(|t| after.binary_search(t).is_err()).copied().collect();
        self.drop_postings(slot, &gone);
        self.add(slot, &after);
    }

    /// The entity and its fields as they were.
    pub fn remove<'a>(&mut self, id: i64, fields: impl IntoIterator<Item = &'a str>) {
        let Some(slot) = self.slots.remove(&id) else { return };
        self.drop_postings(slot, &trigrams(fields));
        self.free.push(slot);
    }

    fn add(&mut self, slot: u32, trigrams: &[Trigram]) {
        for &t in trigrams {
            self.postings.entry(t).or_default().insert(slot);
        }
    }

    fn drop_postings(&mut self, slot: u32, trigrams: &[Trigram]) {
        for t in trigrams {
            if let Some(posting) = self.postings.get_mut(t) {
                posting.remove(slot);
                if posting.is_empty() {
                    self.postings.remove(t);
                }
            }
        }
    }

    /// The entities whose fields may contain `needle` (lowercase): the intersection of its
    /// trigrams' postings, smallest first so the work is bounded by the rarest one.
    pub fn candidates(&self, needle: &str) -> Candidates {
        if needle.len() < 3 {
            return Candidates::Scan;
        }
        let mut postings = Vec::new();
        for t in trigrams([needle]) {
            match self.postings.get(&t) {
                Some(posting) => postings.push(posting),
                None => return Candidates::Ids { ids: Vec::new(), exact: true },
            }
        }
        postings.sort_by_key(|p| p.len());
        let mut found = postings[0].clone();
        for posting in &postings[1..] {
            if found.is_empty() {
                break;
            }
            found &= *posting;
        }
        let mut ids: Vec<i64> = found.iter().map(|slot| self.ids[slot as usize]).collect();
        ids.sort_unstable();
        Candidates::Ids { ids, exact: needle.len() == 3 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(index: &TrigramIndex, needle: &str) -> (Vec<i64>, bool) {
        match index.candidates(needle) {
            Candidates::Ids { ids, exact } => (ids, exact),
            Candidates::Scan => panic!("{needle:?} was not looked up"),
        }
    }

    #[test]
    fn postings_follow_inserts_changes_and_removals() {
        let mut index = TrigramIndex::default();
        index.insert(10, ["alice", "person", "likes tea"]);
        index.insert(20, ["bob", "person"]);
        assert_eq!(ids(&index, "son"), (vec![10, 20], true));
        assert_eq!(ids(&index, "alice"), (vec![10], false));
        assert_eq!(ids(&index, "eperson").0, Vec::<i64>::new(), "trigrams across two fields");
        assert!(matches!(index.candidates("al"), Candidates::Scan));

        index.extend(20, ["drinks coffee"]);
        assert_eq!(ids(&index, "fee"), (vec![20], true));
        let before = trigrams(["bob", "person", "drinks coffee"]);
        index.replace(20, &before, ["bob", "person"]);
        assert!(ids(&index, "fee").0.is_empty());
        assert_eq!(ids(&index, "per").0, [10, 20]);

        index.remove(10, ["alice", "person", "likes tea"]);
        assert!(ids(&index, "ali").0.is_empty());
        assert!(!index.postings.contains_key(&trigrams(["ali"])[0]), "an empty posting is dropped");
        // The freed slot is reused by the next entity and maps to its id.
        index.insert(30, ["alicia"]);
        assert_eq!(index.ids.len(), 2);
        assert_eq!(ids(&index, "ali").0, [30]);
    }

    #[test]
    fn multibyte_text_is_matched_by_bytes() {
        let mut index = TrigramIndex::default();
        index.insert(1, ["straße 5"]);
        index.insert(2, ["zoë"]);
        assert_eq!(ids(&index, "aße").0, [1]);
        assert_eq!(ids(&index, "oë"), (vec![2], true), "three bytes, two characters");
        assert!(matches!(index.candidates("ë"), Candidates::Scan), "two bytes");
    }
}
