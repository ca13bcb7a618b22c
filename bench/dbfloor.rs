//! Database floors for `bench/run`: pgbench scripts of the very statements our server sends
//! (`storage::statements`), so pgbench (libpq, prepared statements) measures what PostgreSQL alone
//! needs for our calls, however fast a server were.
//!
//! usage: bench-dbfloor --size N    the stdio benchmark's mixed calls, one round of four in its
//!                                  order (a create with two observations, a search's graph-version
//!                                  read, an observation added to an existing entity, another
//!                                  version read), each its own transaction as ours are; entities
//!                                  `entity-000000`… exist, as bench-stdio loads them
//!        bench-dbfloor --create    the HTTP benchmark's write: one single-entity create (one
//!                                  observation) a transaction, a new name each time

use anyhow::{Context, Result, bail};
use mcp_server::storage::statements::{ADD_OBSERVATIONS, CREATE, VERSION};

/// The tenant of stdio and of HTTP without auth.
const TENANT: &str = "'default'";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let statements = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--size", size] => mixed(size.parse().context("--size")?),
        ["--create"] => vec![
            "\\set r random(0, 999999999999)".to_owned(),
            // As bench-loadgen's creates: `{name, entityType: "bench", observations: ["created under load"]}`.
            create("'w-' || :client_id || '-' || :r", "bench", &["'created under load'"]),
        ],
        _ => bail!("usage: bench-dbfloor --size N | --create"),
    };
    for statement in statements {
        if statement.contains('$') {
            bail!("a statement kept a parameter: {statement}");
        }
        println!("{statement}");
    }
    Ok(())
}

fn mixed(size: u64) -> Vec<String> {
    let create = create("'floor-' || :r", "person", &["'works on topic-1 since 2001'", "'tag f' || :r || 'x'"]);
    // `[[entity, [[content, lc]]]]`, as our server sends it.
    let add_input = "json_build_array(json_build_array('entity-' || lpad(:t::text, 6, '0'), \
         json_build_array(json_build_array('seen in round ' || :r, 'seen in round ' || :r))))";
    let add = ADD_OBSERVATIONS.replace("$2::json", &format!("({add_input})::json")).replace("$1", TENANT);
    let version = format!("{};", VERSION.replace("$1", TENANT));
    vec![
        "\\set r random(0, 999999999)".to_owned(),
        format!("\\set t random(0, {})", size.saturating_sub(1)),
        create,
        version.clone(),
        format!("{add};"),
        version,
    ]
}

/// The create statement for one entity, built in SQL from pgbench's variables as our server sends
/// it: `[[tenant, name, type, name_lc, type_lc, [[content, lc], …]]]` (the text here is lowercase).
/// `name` and each observation are SQL expressions.
fn create(name: &str, entity_type: &str, observations: &[&str]) -> String {
    let observations: Vec<String> =
        observations.iter().map(|text| format!("json_build_array({text}, {text})")).collect();
    let input = format!(
        "json_build_array(json_build_array({TENANT}, {name}, '{entity_type}', {name}, '{entity_type}', \
         json_build_array({})))",
        observations.join(", ")
    );
    format!("{};", CREATE.replace("$1::json", &format!("({input})::json")))
}
