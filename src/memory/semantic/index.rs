//! A tenant's vectors in memory, read from the database and kept current by reading only those
//! stored since (`seq`): a search ranks by dot product over all of them (they are unit length).
//! Vectors of deleted entities stay until a search finds their entity gone and drops the copy.

use std::collections::{BinaryHeap, HashMap, hash_map::Entry};

use crate::storage::StoredVector;

#[derive(Default)]
pub struct TenantVectors {
    /// The highest `seq` read.
    pub seq: i64,
    dims: usize,
    ids: Vec<i64>,
    /// `ids.len() × dims` values, one row an entity.
    data: Vec<f32>,
    slot: HashMap<i64, usize>,
}

/// A candidate in the heap, ordered by score (ties: the older entity first).
#[derive(PartialEq)]
struct Hit(f32, i64);

impl Eq for Hit {}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Hit {
    // Reversed, so that the heap's top is the worst hit kept.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl TenantVectors {
    /// Adds or replaces the vectors read; one of another dimension (a new model mid-read) is
    /// skipped.
    pub fn apply(&mut self, rows: Vec<StoredVector>) {
        for row in rows {
            self.seq = self.seq.max(row.seq);
            if self.dims == 0 {
                self.dims = row.vector.len();
            }
            if row.vector.len() != self.dims {
                continue;
            }
            match self.slot.entry(row.entity_id) {
                Entry::Occupied(at) => {
                    let at = *at.get() * self.dims;
                    self.data[at..at + self.dims].copy_from_slice(&row.vector);
                }
                Entry::Vacant(slot) => {
                    slot.insert(self.ids.len());
                    self.ids.push(row.entity_id);
                    self.data.extend_from_slice(&row.vector);
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Drops the vectors of entities found gone.
    pub fn remove(&mut self, gone: &[i64]) {
        for id in gone {
            let Some(at) = self.slot.remove(id) else { continue };
            let last = self.ids.len() - 1;
            if at != last {
                let moved = self.ids[last];
                self.ids[at] = moved;
                self.data.copy_within(last * self.dims..(last + 1) * self.dims, at * self.dims);
                self.slot.insert(moved, at);
            }
            self.ids.pop();
            self.data.truncate(last * self.dims);
        }
    }

    /// What the copy takes in memory, roughly.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4 + self.ids.len() * 40
    }

    /// The `k` entities nearest to `query` (a unit vector), best first, with their similarity.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        if k == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let mut heap = BinaryHeap::with_capacity(k + 1);
        for (row, &id) in self.data.chunks_exact(self.dims).zip(&self.ids) {
            let score = dot(row, query);
            if heap.len() < k {
                heap.push(Hit(score, id));
            } else if heap.peek().is_some_and(|worst: &Hit| score > worst.0) {
                heap.pop();
                heap.push(Hit(score, id));
            }
        }
        let mut hits: Vec<(i64, f32)> = heap.into_iter().map(|Hit(score, id)| (id, score)).collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }
}

/// Eight running sums, so the compiler vectorises the loop: one sum must add in order, which
/// kept it to one multiply-add at a time (bench/results/2026-12-07-semantic*.md).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(entity_id: i64, seq: i64, vector: &[f32]) -> StoredVector {
        StoredVector { entity_id, seq, vector: vector.to_vec() }
    }

    #[test]
    fn nearest_ranks_by_similarity_and_replaced_vectors_count_once() {
        let mut index = TenantVectors::default();
        index.apply(vec![row(1, 1, &[1.0, 0.0]), row(2, 2, &[0.0, 1.0]), row(3, 3, &[0.6, 0.8])]);
        assert_eq!(index.nearest(&[1.0, 0.0], 2).iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 3]);
        index.apply(vec![row(1, 4, &[0.0, -1.0]), row(4, 5, &[1.0, 0.0, 0.0])]);
        assert_eq!((index.len(), index.seq), (3, 5));
        assert_eq!(index.nearest(&[1.0, 0.0], 3).iter().map(|h| h.0).collect::<Vec<_>>(), vec![3, 1, 2]);
        assert!(index.nearest(&[1.0, 0.0, 0.0], 3).is_empty());
        index.remove(&[2, 9]);
        assert_eq!(index.nearest(&[1.0, 0.0], 3).iter().map(|h| h.0).collect::<Vec<_>>(), vec![3, 1]);
        index.remove(&[1]);
        assert_eq!(index.nearest(&[0.6, 0.8], 3), vec![(3, 1.0)]);
    }

    #[test]
    fn dot_is_the_sum_of_products_at_any_length() {
        for n in [0, 1, 7, 8, 9, 384] {
            let (a, b): (Vec<f32>, Vec<f32>) = (0..n).map(|i| (i as f32 * 0.5, 1.0 - i as f32 * 0.25)).unzip();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() <= 1e-3 * plain.abs().max(1.0), "{n}");
        }
    }
}
