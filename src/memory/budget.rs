//! The reply byte budget (MAX_REPLY_BYTES): what a graph read's reply takes, and how a page is
//! filled within it. A read returns the first page that fits, and `nextCursor` for the rest.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Kept from the budget for what is not an entity or a relation: the JSON-RPC envelope, the
/// graph's outer keys and `nextCursor` (in both forms).
pub const RESERVE: usize = 1024;

/// A reply past this many bytes is built under a permit (`Replies`); smaller ones never wait.
pub const LARGE: usize = 256 * 1024;

/// Most large replies built at once: beyond it, reads wait for a permit (within their deadline).
pub const BUILDS: usize = 4;

/// Bytes a string takes in a tool reply: JSON-escaped in the structured content, and escaped
/// twice in the text (the reference's pretty JSON, itself sent as a JSON string). Exact for
/// serde_json's escapes.
pub fn text(s: &str) -> usize {
    // A fold, not `any`: without an early exit the check compiles to vector instructions.
    let plain = s.bytes().fold(true, |plain, b| plain & (b >= 0x20 && b != b'"' && b != b'\\'));
    if plain {
        return 6 + 2 * s.len();
    }
    let escaped = |b: u8| match b {
        b'"' | b'\\' => 6,
        b'\n' | b'\t' | b'\r' | 0x08 | 0x0c => 5,
        0..0x20 => 13,
        _ => 2,
    };
    6 + s.bytes().map(escaped).sum::<usize>()
}

/// An entity's bytes in a reply: its strings, and per entity and observation the keys,
/// punctuation and indentation of both forms.
pub fn entity<'a>(name: &str, entity_type: &str, observations: impl Iterator<Item = &'a str>) -> usize {
    136 + text(name) + text(entity_type) + observations.map(|o| 12 + text(o)).sum::<usize>()
}

pub fn relation(from: &str, to: &str, relation_type: &str) -> usize {
    109 + text(from) + text(to) + text(relation_type)
}

/// What an entity's times add to its bytes in a reply (`include: ["time"]`): two times and one per
/// observation, each an RFC 3339 string of 24 bytes, with their keys in both forms.
pub fn entity_times(observations: usize) -> usize {
    2 * (48 + text(TIME)) + 80 + observations * (12 + text(TIME))
}

/// What a relation's creation time adds to its bytes in a reply.
pub fn relation_time() -> usize {
    40 + text(TIME)
}

const TIME: &str = "2026-12-07T07:24:37.123Z";

/// A page being filled: the bytes left, the items a `limit` still allows, and whether anything
/// is on it yet (the first item always is, so that every page moves on).
pub struct Fill {
    left: usize,
    spent: usize,
    count_left: usize,
    taken: usize,
}

impl Fill {
    pub fn new(max_reply_bytes: usize, limit: Option<usize>) -> Self {
        Fill {
            left: max_reply_bytes.saturating_sub(RESERVE),
            spent: 0,
            count_left: limit.unwrap_or(usize::MAX),
            taken: 0,
        }
    }

    /// Takes an item when it fits (or the page is empty); `false` means the page is full.
    pub fn take(&mut self, cost: usize) -> bool {
        if self.count_left == 0 || (self.taken > 0 && cost > self.left) {
            return false;
        }
        self.left = self.left.saturating_sub(cost);
        self.spent += cost;
        self.count_left -= 1;
        self.taken += 1;
        true
    }

    /// The items of a `limit` still allowed, for the next kind (relations after entities).
    pub fn restart_count(&mut self, limit: Option<usize>) {
        self.count_left = limit.unwrap_or(usize::MAX);
    }

    pub fn count_left(&self) -> usize {
        self.count_left
    }

    pub fn spent(&self) -> usize {
        self.spent
    }

    /// How many rows to fetch next: about what fills the rest, judged by the rows so far, so that
    /// a page takes a few queries and holds little more than the budget before it is cut.
    pub fn chunk(&self) -> usize {
        let average = self.spent.checked_div(self.taken).unwrap_or(256).max(1);
        (self.left / average + 1).clamp(1, 4096).min(self.count_left)
    }
}

/// At most `BUILDS` large replies are built at once.
#[derive(Clone)]
pub struct Replies(Arc<Semaphore>);

impl Default for Replies {
    fn default() -> Self {
        Replies(Arc::new(Semaphore::new(BUILDS)))
    }
}

impl Replies {
    /// A permit once a reply has grown past `LARGE` (and none is held yet).
    pub async fn when_large(&self, held: &mut Option<OwnedSemaphorePermit>, spent: usize) {
        if held.is_none() && spent > LARGE {
            *held = Some(self.0.clone().acquire_owned().await.expect("the semaphore is never closed"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_takes_its_first_item_whatever_it_costs_and_then_only_what_fits() {
        let mut fill = Fill::new(RESERVE + 100, Some(3));
        assert!(fill.take(500), "the first item is always on the page");
        assert!(!fill.take(1));
        let mut fill = Fill::new(RESERVE + 100, Some(2));
        assert!(fill.take(40) && fill.take(40));
        assert!(!fill.take(1), "the limit");
        fill.restart_count(None);
        assert!(fill.take(20) && !fill.take(1));
    }

    #[test]
    fn escapes_count_in_both_forms() {
        let twice = |s: &str| {
            let once = serde_json::to_string(s).unwrap();
            once.len() + serde_json::to_string(&once).unwrap().len() - 2
        };
        for s in ["", "plain", "ünï", "\"q\"", "back\\slash", "tab\tline\n", "\u{1}\u{1f}"] {
            assert_eq!(text(s), twice(s), "{s:?}");
        }
    }
}
