//! Opaque pagination cursors, bound to the tenant (and query) that made them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Binding: hash of tenant, kind and query; a cursor replayed elsewhere is refused.
    b: String,
    /// Last entity id (graph pages) or result offset (search pages).
    pub e: i64,
    /// Last relation id (graph pages).
    pub r: i64,
}

fn binding(tenant: &str, scope: &str) -> String {
    let digest = Sha256::new().chain_update(tenant).chain_update([0]).chain_update(scope).finalize();
    hex::encode(&digest[..12])
}

impl Cursor {
    pub fn encode(tenant: &str, scope: &str, e: i64, r: i64) -> String {
        let cursor = Cursor { b: binding(tenant, scope), e, r };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).expect("cursor serializes"))
    }

    /// `None` when the text is not a cursor this tenant and scope issued.
    pub fn decode(tenant: &str, scope: &str, text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
        (cursor.b == binding(tenant, scope) && cursor.e >= 0 && cursor.r >= 0).then_some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_for_its_tenant_only() {
        let text = Cursor::encode("alice", "graph", 42, 7);
        let cursor = Cursor::decode("alice", "graph", &text).expect("own cursor decodes");
        assert_eq!((cursor.e, cursor.r), (42, 7));
        assert_eq!(Cursor::decode("bob", "graph", &text), None);
        assert_eq!(Cursor::decode("alice", "search:x", &text), None);
        assert_eq!(Cursor::decode("alice", "graph", "not-a-cursor"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// Whatever a client sends as a cursor is refused or read, never a panic; a cursor from
        /// a real tenant decodes only as the tenant and scope that made it.
        #[test]
        fn any_text_decodes_or_is_refused(text in ".{0,80}", b64 in "[A-Za-z0-9_-]{0,120}") {
            let _ = Cursor::decode("alice", "graph", &text);
            let _ = Cursor::decode("alice", "graph", &b64);
        }

        #[test]
        fn encode_then_decode_round_trips(tenant in ".{0,20}", scope in ".{0,20}", e in 0i64.., r in 0i64..) {
            let text = Cursor::encode(&tenant, &scope, e, r);
            let cursor = Cursor::decode(&tenant, &scope, &text).expect("its own cursor decodes");
            proptest::prop_assert_eq!((cursor.e, cursor.r), (e, r));
            let other = format!("{tenant}'");
            proptest::prop_assert_eq!(Cursor::decode(&other, &scope, &text), None);
        }
    }
}
