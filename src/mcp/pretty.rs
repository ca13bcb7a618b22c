//! The text of a graph result: `JSON.stringify(graph, null, 2)` as the reference prints it, and
//! byte for byte what `serde_json::to_string_pretty` prints for the graph's view. The shape is
//! fixed, so its punctuation and indentation are written as whole literals, and a string without
//! a character to escape (nearly all of them) is copied as it is; serde_json's pretty printer wrote
//! indentation two bytes at a time and looked every byte up in its escape table, and printing the
//! text took a tenth of a search's CPU.

use crate::memory::{Entity, Relation};

/// Bytes the text takes, closely: its strings (JSON escapes aside) and, per item, its keys,
/// quotes and indentation.
pub fn size(entities: &[Entity], relations: &[Relation]) -> usize {
    let entities: usize = entities
        .iter()
        .map(|e| 100 + e.name.len() + e.entity_type.len() + e.observations.iter().map(|o| 10 + o.len()).sum::<usize>())
        .sum();
    let relations: usize = relations.iter().map(|r| 90 + r.from.len() + r.to.len() + r.relation_type.len()).sum();
    64 + entities + relations
}

/// The graph's text, with `nextCursor` last when there is one.
pub fn graph_text(entities: &[Entity], relations: &[Relation], next_cursor: Option<&str>) -> String {
    let mut out = Vec::with_capacity(size(entities, relations) + next_cursor.map_or(0, |c| 20 + c.len()));
    out.extend_from_slice(b"{\n  \"entities\": ");
    array(&mut out, entities, |out, e| {
        out.extend_from_slice(b"{\n      \"name\": ");
        string(out, &e.name);
        out.extend_from_slice(b",\n      \"entityType\": ");
        string(out, &e.entity_type);
        out.extend_from_slice(b",\n      \"observations\": ");
        if e.observations.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            for (i, observation) in e.observations.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"[\n        " } else { b",\n        " });
                string(out, observation);
            }
            out.extend_from_slice(b"\n      ]");
        }
        out.extend_from_slice(b"\n    }");
    });
    out.extend_from_slice(b",\n  \"relations\": ");
    array(&mut out, relations, |out, r| {
        out.extend_from_slice(b"{\n      \"from\": ");
        string(out, &r.from);
        out.extend_from_slice(b",\n      \"to\": ");
        string(out, &r.to);
        out.extend_from_slice(b",\n      \"relationType\": ");
        string(out, &r.relation_type);
        out.extend_from_slice(b"\n    }");
    });
    if let Some(cursor) = next_cursor {
        out.extend_from_slice(b",\n  \"nextCursor\": ");
        string(&mut out, cursor);
    }
    out.extend_from_slice(b"\n}");
    String::from_utf8(out).expect("only UTF-8 is written")
}

/// A top-level array of the graph (items at indent 4): `[]` when empty.
fn array<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    if items.is_empty() {
        out.extend_from_slice(b"[]");
        return;
    }
    for (i, each) in items.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"[\n    " } else { b",\n    " });
        item(out, each);
    }
    out.extend_from_slice(b"\n  ]");
}

/// A JSON string: copied when nothing in it needs escaping, else escaped by serde_json.
fn string(out: &mut Vec<u8>, text: &str) {
    // A fold, not `any`: without an early exit the check compiles to vector instructions.
    let plain = text.bytes().fold(true, |plain, b| plain & (b >= 0x20 && b != b'"' && b != b'\\'));
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, text).expect("a string serializes");
    }
}

/// The graph's view as serde prints it, the reference's field order: what the tests compare with.
#[cfg(test)]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct View<'a> {
    pub entities: &'a [Entity],
    pub relations: &'a [Relation],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, entity_type: &str, observations: &[&str]) -> Entity {
        Entity {
            name: name.into(),
            entity_type: entity_type.into(),
            observations: observations.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn relation(from: &str, to: &str, relation_type: &str) -> Relation {
        Relation { from: from.into(), to: to.into(), relation_type: relation_type.into() }
    }

    fn assert_prints_as_serde(entities: &[Entity], relations: &[Relation], cursor: Option<&str>) {
        let expected = serde_json::to_string_pretty(&View { entities, relations, next_cursor: cursor }).unwrap();
        assert_eq!(graph_text(entities, relations, cursor), expected);
    }

    #[test]
    fn empty_graphs_and_empty_observations_print_as_serde_does() {
        assert_prints_as_serde(&[], &[], None);
        assert_prints_as_serde(&[], &[], Some("c1"));
        assert_prints_as_serde(&[entity("a", "t", &[])], &[], None);
        assert_prints_as_serde(&[], &[relation("a", "b", "knows")], None);
    }

    #[test]
    fn every_escape_and_non_ascii_text_print_as_serde_does() {
        // Every control character, the two that JSON always escapes, and text that needs none.
        let controls: String = (0u8..0x20).map(char::from).collect();
        let awkward = ["\"quoted\"", "back\\slash", "tab\tline\nbreak\r", "ünïcödé ✓ 𝄞", "\u{7f}\u{2028}", &controls];
        let entities: Vec<Entity> = awkward.iter().map(|text| entity(text, text, &[text, "plain"])).collect();
        let relations: Vec<Relation> = awkward.iter().map(|text| relation(text, "plain", text)).collect();
        assert_prints_as_serde(&entities, &relations, Some("cursor \"x\""));
    }

    #[test]
    fn graphs_of_many_shapes_print_as_serde_does() {
        let texts = ["", "a", "Ada Lovelace", "x\"y", "tail\\", "ß", "\u{1}"];
        let mut seed = 0x9e37_79b9_u32;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for _ in 0..200 {
            let entities: Vec<Entity> = (0..next(4))
                .map(|_| {
                    let observations: Vec<&str> = (0..next(4)).map(|_| texts[next(texts.len())]).collect();
                    entity(texts[next(texts.len())], texts[next(texts.len())], &observations)
                })
                .collect();
            let relations: Vec<Relation> = (0..next(3))
                .map(|_| relation(texts[next(texts.len())], texts[next(texts.len())], texts[next(texts.len())]))
                .collect();
            let cursor = [None, Some("c"), Some("\"")][next(3)];
            assert_prints_as_serde(&entities, &relations, cursor);
        }
    }

    #[test]
    fn the_size_estimate_covers_plain_text() {
        let entities: Vec<Entity> =
            (0..50).map(|i| entity(&format!("entity-{i}"), "person", &["works on x", "note"])).collect();
        let relations = vec![relation("entity-1", "entity-2", "knows")];
        let text = graph_text(&entities, &relations, None);
        assert!(size(&entities, &relations) >= text.len(), "{} < {}", size(&entities, &relations), text.len());
        assert!(size(&entities, &relations) < 2 * text.len());
    }
}
