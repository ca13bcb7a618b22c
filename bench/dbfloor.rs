//! The database floor of the stdio benchmark's mixed calls on PostgreSQL, for `bench/run`: prints
//! a pgbench script that runs, in the benchmark's order, the statements our server sends for one
//! round of four calls (a create with two observations, a search's graph-version read, an
//! observation added to an existing entity, another version read), each its own transaction as
//! ours are. pgbench (libpq, prepared statements, one client) then measures what the database
//! alone needs for them, however fast a server were: no server on this schema and these commits
//! can run the mixed calls faster.
//!
//! usage: bench-dbfloor --size N    (entities `entity-000000`… exist, as bench-stdio loads them)

use anyhow::{Context, Result, ensure};
use mcp_server::storage::statements::{ADD_OBSERVATIONS, CREATE, VERSION};

/// The stdio transport's tenant.
const TENANT: &str = "'default'";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ensure!(args.len() == 2 && args[0] == "--size", "usage: bench-dbfloor --size N");
    let size: u64 = args[1].parse().context("--size")?;
    // The inputs our server sends (`[[tenant, name, type, name_lc, type_lc, [[content, lc], …]]]`
    // and `[[entity, [[content, lc]]]]`), built in SQL from pgbench's random numbers.
    let create_input = "json_build_array(json_build_array('default', 'floor-' || :r, 'person', 'floor-' || :r, \
         'person', json_build_array(json_build_array('works on topic-1 since 2001', 'works on topic-1 since 2001'), \
         json_build_array('tag f' || :r || 'x', 'tag f' || :r || 'x'))))";
    let add_input = "json_build_array(json_build_array('entity-' || lpad(:t::text, 6, '0'), \
         json_build_array(json_build_array('seen in round ' || :r, 'seen in round ' || :r))))";
    let create = CREATE.replace("$1::json", &format!("({create_input})::json"));
    let add = ADD_OBSERVATIONS.replace("$2::json", &format!("({add_input})::json")).replace("$1", TENANT);
    let version = VERSION.replace("$1", TENANT);
    ensure!(![&create, &add, &version].iter().any(|s| s.contains('$')), "a statement kept a parameter");
    println!("\\set r random(0, 999999999)");
    println!("\\set t random(0, {})", size.saturating_sub(1));
    for statement in [&create, &version, &add, &version] {
        println!("{statement};");
    }
    Ok(())
}
