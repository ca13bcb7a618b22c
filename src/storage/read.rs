//! A read of one or more statements, for `memory` to drive (it pages and budgets the reply) while
//! the connection and the transaction stay storage's: one pooled connection for a read that one
//! statement answers, or one snapshot (a read-only transaction) when its statements must agree.

use sqlx::{Any, AnyConnection, pool::PoolConnection};

use super::{Backend, EntityRow, RelationRow, StorageError, Store, WriteTx, graph, search};

type Result<T> = std::result::Result<T, StorageError>;

pub struct Read {
    conn: Conn,
    backend: Backend,
}

enum Conn {
    Statement(PoolConnection<Any>),
    Snapshot(WriteTx),
}

impl Store {
    /// A read that one statement answers: no transaction.
    pub async fn read(&self) -> Result<Read> {
        Ok(Read { conn: Conn::Statement(self.reader().acquire().await?), backend: self.backend() })
    }

    /// A read whose statements see one consistent snapshot; `Read::finish` ends it.
    pub async fn snapshot(&self) -> Result<Read> {
        Ok(Read { conn: Conn::Snapshot(self.begin_read().await?), backend: self.backend() })
    }
}

impl Read {
    fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Conn::Statement(conn) => conn,
            Conn::Snapshot(tx) => tx,
        }
    }

    /// Ends the read (a snapshot's transaction commits: it wrote nothing).
    pub async fn finish(self) -> Result<()> {
        if let Conn::Snapshot(tx) = self.conn {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Entities after `after_id`, in insertion order, with their observations.
    pub async fn entities_page(&mut self, tenant: &str, after_id: i64, limit: Option<i64>) -> Result<Vec<EntityRow>> {
        Ok(graph::entities_page(self.conn(), tenant, after_id, limit).await?)
    }

    /// Relations after `after_id`, in insertion order.
    pub async fn relations_page(
        &mut self,
        tenant: &str,
        after_id: i64,
        limit: Option<i64>,
    ) -> Result<Vec<RelationRow>> {
        Ok(graph::relations_page(self.conn(), tenant, after_id, limit).await?)
    }

    /// The named entities that exist, in insertion order.
    pub async fn entities_named(&mut self, tenant: &str, names: &[String]) -> Result<Vec<EntityRow>> {
        Ok(graph::entities_named(self.conn(), tenant, names).await?)
    }

    /// The tenant's entities among `ids` that exist, in the order of `ids`.
    pub async fn entities_with_ids(&mut self, tenant: &str, ids: &[i64]) -> Result<Vec<EntityRow>> {
        Ok(graph::entities_with_ids(self.conn(), Some(tenant), ids).await?)
    }

    /// Relations with any of `names` at either end, in insertion order.
    pub async fn relations_touching_any(&mut self, tenant: &str, names: &[String]) -> Result<Vec<RelationRow>> {
        Ok(graph::relations_touching_any(self.conn(), tenant, names).await?)
    }

    /// Relations with `name` at either end, in insertion order.
    pub async fn relations_touching(&mut self, tenant: &str, name: &str) -> Result<Vec<RelationRow>> {
        Ok(graph::relations_touching(self.conn(), tenant, name).await?)
    }

    /// search_nodes' matches from `offset` (`search::search_graph`), with the relations touching
    /// them; `scan` reads the tenant's rows instead of the trigram indexes.
    pub async fn search(
        &mut self,
        tenant: &str,
        query: &str,
        ranked: bool,
        scan: bool,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<(Vec<EntityRow>, Vec<RelationRow>)> {
        let backend = self.backend;
        search::search_graph(self.conn(), backend, tenant, query, search::Plan { ranked, scan }, offset, limit).await
    }
}
