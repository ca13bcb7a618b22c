//! The n-gram postings (every substring of one to three bytes) of each cached entity's lowercased
//! text (name, type, observations), so a search reads postings and costs what it finds, not the
//! size of the graph. Grams never span two fields, so a query of up to three bytes is answered by
//! its own posting; a longer one intersects its trigrams' and verifies the few candidates left.
//!
//! Bytes, not characters: a UTF-8 string contains another exactly when its bytes do.

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::size;

/// One to three bytes of text and their count, packed.
type Gram = u32;

fn gram(bytes: &[u8]) -> Gram {
    bytes.iter().fold(bytes.len() as u32, |packed, &b| (packed << 8) | u32::from(b))
}

/// Entity ids in ascending order; `exact` when each is a match, not a candidate to verify.
pub struct Candidates {
    pub ids: Vec<i64>,
    pub exact: bool,
}

#[derive(Default)]
pub struct GramIndex {
    postings: FxHashMap<Gram, RoaringBitmap>,
    /// The entity id of each slot; a removed entity's slot is reused.
    ids: Vec<i64>,
    slots: FxHashMap<i64, u32>,
    free: Vec<u32>,
    /// Entity ids in all postings together (`size::POSTING` each).
    entries: usize,
}

/// The distinct grams of `fields`, sorted.
pub fn grams<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<Gram> {
    let mut all: Vec<Gram> = fields
        .into_iter()
        .flat_map(|field| {
            let bytes = field.as_bytes();
            (0..bytes.len()).flat_map(move |at| (1..=3).filter_map(move |n| bytes.get(at..at + n)).map(gram))
        })
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

impl GramIndex {
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
        self.add(slot, &grams(fields));
    }

    /// Fields the entity gained (observations added).
    pub fn extend<'a>(&mut self, id: i64, fields: impl IntoIterator<Item = &'a str>) {
        if let Some(&slot) = self.slots.get(&id) {
            self.add(slot, &grams(fields));
        }
    }

    /// The entity's fields changed from `before` (its grams, as `grams` gives them) to `after`:
    /// the grams it no longer has are dropped.
    pub fn replace<'a>(&mut self, id: i64, before: &[Gram], after: impl IntoIterator<Item = &'a str>) {
        let Some(&slot) = self.slots.get(&id) else { return };
        let after = grams(after);
        let gone: Vec<Gram> = before.iter().filter(|t| after.binary_search(t).is_err()).copied().collect();
        self.drop_postings(slot, &gone);
        self.add(slot, &after);
    }

    /// The entity and its fields as they were.
    pub fn remove<'a>(&mut self, id: i64, fields: impl IntoIterator<Item = &'a str>) {
        let Some(slot) = self.slots.remove(&id) else { return };
        self.drop_postings(slot, &grams(fields));
        self.free.push(slot);
    }

    fn add(&mut self, slot: u32, grams: &[Gram]) {
        for &t in grams {
            self.entries += usize::from(self.postings.entry(t).or_default().insert(slot));
        }
    }

    /// The postings' estimated memory (`size`).
    pub fn bytes(&self) -> usize {
        self.postings.len() * size::GRAM + self.entries * size::POSTING
    }

    fn drop_postings(&mut self, slot: u32, grams: &[Gram]) {
        for t in grams {
            if let Some(posting) = self.postings.get_mut(t) {
                self.entries -= usize::from(posting.remove(slot));
                if posting.is_empty() {
                    self.postings.remove(t);
                }
            }
        }
    }

    /// The entities whose fields may contain `needle` (lowercase, not empty): its own posting,
    /// or the intersection of its trigrams' postings, smallest first so the work is bounded by
    /// the rarest one.
    pub fn candidates(&self, needle: &str) -> Candidates {
        let bytes = needle.as_bytes();
        let exact = bytes.len() <= 3;
        let mut postings = Vec::new();
        for t in if exact { vec![gram(bytes)] } else { bytes.windows(3).map(gram).collect() } {
            match self.postings.get(&t) {
                Some(posting) => postings.push(posting),
                None => return Candidates { ids: Vec::new(), exact },
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
        Candidates { ids, exact }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(index: &GramIndex, needle: &str) -> (Vec<i64>, bool) {
        let Candidates { ids, exact } = index.candidates(needle);
        (ids, exact)
    }

    #[test]
    fn postings_follow_inserts_changes_and_removals() {
        let mut index = GramIndex::default();
        index.insert(10, ["alice", "person", "likes tea"]);
        index.insert(20, ["bob", "person"]);
        assert_eq!(ids(&index, "son"), (vec![10, 20], true));
        assert_eq!(ids(&index, "b"), (vec![20], true));
        assert_eq!(ids(&index, "es"), (vec![10], true));
        assert_eq!(ids(&index, "alice"), (vec![10], false));
        assert_eq!(ids(&index, "eperson").0, Vec::<i64>::new(), "grams across two fields");
        assert_eq!(ids(&index, "ep").0, Vec::<i64>::new());

        index.extend(20, ["drinks coffee"]);
        assert_eq!(ids(&index, "fee"), (vec![20], true));
        let before = grams(["bob", "person", "drinks coffee"]);
        index.replace(20, &before, ["bob", "person"]);
        assert!(ids(&index, "fee").0.is_empty());
        assert!(ids(&index, "f").0.is_empty());
        assert_eq!(ids(&index, "per").0, [10, 20]);

        index.remove(10, ["alice", "person", "likes tea"]);
        assert!(ids(&index, "ali").0.is_empty());
        assert!(!index.postings.contains_key(&gram(b"ali")), "an empty posting is dropped");
        // The freed slot is reused by the next entity and maps to its id.
        index.insert(30, ["alicia"]);
        assert_eq!(index.ids.len(), 2);
        assert_eq!(ids(&index, "ali").0, [30]);
    }

    #[test]
    fn grams_of_different_lengths_do_not_collide() {
        assert_ne!(gram(b"\0a"), gram(b"a"));
        assert_ne!(gram(b"\0\0a"), gram(b"\0a"));
        assert_eq!(grams(["ab"]), {
            let mut g = vec![gram(b"a"), gram(b"b"), gram(b"ab")];
            g.sort_unstable();
            g
        });
    }

    #[test]
    fn multibyte_text_is_matched_by_bytes() {
        let mut index = GramIndex::default();
        index.insert(1, ["straße 5"]);
        index.insert(2, ["zoë"]);
        assert_eq!(ids(&index, "aße").0, [1]);
        assert_eq!(ids(&index, "oë"), (vec![2], true), "three bytes, two characters");
        assert_eq!(ids(&index, "ë"), (vec![2], true), "two bytes, one character");
    }
}
