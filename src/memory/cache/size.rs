//! What a cached graph takes in memory, estimated and kept as it changes (measuring it on every
//! write would walk the graph): the bytes of its text, plus a fixed cost per entity, observation,
//! relation and search-index entry for the boxes, map slots and allocator rounding around them.
//! The constants were set against the server's resident memory holding 10,000 graphs of 100
//! entities and one of a million (docs/architecture.md, "Measured choices").

/// An entity's box, its slots in the id-ordered tree, the name map (with the name again as the
/// key) and the search index's slot tables.
pub const ENTITY: usize = 240;
/// An observation's headers (text and lowercased copy) in its entity's list.
pub const OBSERVATION: usize = 48;
/// A heap allocation's rounding and bookkeeping, per string.
pub const STRING: usize = 16;
/// A relation, held by id and by value (two copies of its text), and its two ends' entries in
/// the by-name map.
pub const RELATION: usize = 320;
/// A distinct gram of the tenant: its hash-map slot (tables run up to half empty), its bitmap's
/// header and first container.
pub const GRAM: usize = 200;
/// One entity in one gram's posting (an array container's two bytes, with room to grow).
pub const POSTING: usize = 4;
/// A copy's own tables, locks and bookkeeping, and what loading it leaves the allocator holding.
pub const TENANT: usize = 24 * 1024;

/// The least an entity takes (a name kept twice and a type, no observation, no index): a graph
/// of more entities than the byte budget holds at this is not loaded to find out.
pub const LEAST_ENTITY: usize = ENTITY + 3 * STRING;
