//! SQLite's search index takes new rows in batches (migration 20261201000001): a search must
//! find every row, whether the FTS5 index holds it yet or it waits above its table's mark, and
//! must stop finding rows once they are deleted or changed, on either side of the mark.

use crate::common;

use std::collections::BTreeMap;

use common::{Db, TestDb};
use mcp_server::memory::{Entity, ObservationAddition, ObservationDeletion, PageRequest, Tenant};
use sqlx::Connection;

/// The graph as written, in creation order, to compute what a search must return.
#[derive(Default)]
struct Model {
    order: Vec<String>,
    entities: BTreeMap<String, (String, Vec<String>)>,
}

impl Model {
    fn expected(&self, query: &str) -> Vec<(String, Vec<String>)> {
        let needle = query.to_lowercase();
        let found = |text: &str| text.to_lowercase().contains(&needle);
        self.order
            .iter()
            .filter_map(|name| self.entities.get(name).map(|e| (name, e)))
            .filter(|(name, (kind, observations))| found(name) || found(kind) || observations.iter().any(|o| found(o)))
            .map(|(name, (_, observations))| (name.clone(), observations.clone()))
            .collect()
    }
}

async fn marks(url: &str) -> (i64, i64) {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mark = |name: &'static str| {
        sqlx::query_scalar::<_, i64>("SELECT indexed_to FROM search_index_marks WHERE name = $1").bind(name)
    };
    (mark("entities").fetch_one(&mut conn).await.unwrap(), mark("observations").fetch_one(&mut conn).await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn search_finds_rows_on_both_sides_of_the_index_mark() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    // No graph cache: every search runs the SQL (FTS5 plus the unindexed tail).
    let memory = common::memory(&db.url, &["--graph-cache-entities", "0"]).await;
    let tenant = Tenant::default();
    let mut model = Model::default();
    let queries = ["node-1", "ODE-29", "topic-3", "kind-2", "note 2", "seen twice", "zzz"];
    let check = |model: &Model, step: usize| {
        let memory = memory.clone();
        let tenant = tenant.clone();
        let expected: Vec<_> = queries.iter().map(|q| model.expected(q)).collect();
        async move {
            for (query, expected) in queries.iter().zip(expected) {
                let page = memory.search_nodes(&tenant, query, &PageRequest::default()).await.unwrap();
                let got: Vec<_> = page.graph.entities.into_iter().map(|e| (e.name, e.observations)).collect();
                assert_eq!(got, expected, "search {query:?} after step {step}");
            }
        }
    };
    let mut checked_below_mark = false;
    for i in 0..330 {
        let (name, kind) = (format!("node-{i:03}"), format!("Kind-{}", i % 5));
        let observations = vec![format!("note {i} about topic-{}", i % 7)];
        let entity = Entity { name: name.clone(), entity_type: kind.clone(), observations: observations.clone() };
        memory.create_entities(&tenant, vec![entity]).await.unwrap();
        model.order.push(name.clone());
        model.entities.insert(name, (kind, observations));
        if i % 3 == 0 {
            // An observation on an older entity: indexed or not, depending on how far back.
            let target = format!("node-{:03}", i / 2);
            let contents = vec!["Seen twice".to_string()];
            let addition = ObservationAddition { entity_name: target.clone(), contents: contents.clone() };
            if model.entities.contains_key(&target) {
                let added = memory.add_observations(&tenant, vec![addition]).await.unwrap();
                let entity = model.entities.get_mut(&target).unwrap();
                for content in &added[0].added_observations {
                    entity.1.push(content.clone());
                }
            }
        }
        if i % 11 == 10 {
            // Deletes reach the index for indexed rows and must not touch it for the others.
            let gone = format!("node-{:03}", i - 3 * (i % 4));
            memory.delete_entities(&tenant, vec![gone.clone()]).await.unwrap();
            model.entities.remove(&gone);
            let target = format!("node-{:03}", i / 3);
            if let Some(entity) = model.entities.get_mut(&target)
                && let Some(note) = entity.1.first().cloned()
            {
                let deletion = ObservationDeletion { entity_name: target.clone(), observations: vec![note] };
                memory.delete_observations(&tenant, vec![deletion]).await.unwrap();
                entity.1.remove(0);
            }
        }
        if i % 25 == 24 {
            check(&model, i).await;
            checked_below_mark |= marks(&db.url).await.0 > 0;
        }
    }
    check(&model, 330).await;
    // Both sides were searched: the index took the first rows in batches, and the newest wait.
    let (entities_mark, observations_mark) = marks(&db.url).await;
    assert!(checked_below_mark);
    assert_eq!(entities_mark % 128, 0, "entities are indexed 128 at a time (mark {entities_mark})");
    assert!((256..330).contains(&entities_mark), "entities mark {entities_mark}");
    assert!(observations_mark >= 256, "observations mark {observations_mark}");
}
