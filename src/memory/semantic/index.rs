//! A tenant's vectors in memory, read from the database and kept current by reading only those
//! stored since (`seq`): a search ranks by dot product over all of them (they are unit length).
//! Vectors of deleted entities stay until a search finds their entity gone and drops the copy.
//! Kept as int8, each row scaled by its largest component: a scan of a large tenant is bound by
//! memory reads, and a quarter of the bytes ranks as float32 does, scores within 0.005.

use std::collections::{BinaryHeap, HashMap, HashSet, hash_map::Entry};

use crate::storage::StoredVector;

#[derive(Default)]
pub struct TenantVectors {
    /// The highest `seq` read.
    pub seq: i64,
    dims: usize,
    ids: Vec<i64>,
    /// `ids.len() × dims` components, one row an entity, each `round(x / scale)`.
    data: Vec<i8>,
    /// Each row's scale: its largest magnitude over 127.
    scales: Vec<f32>,
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
            let at = match self.slot.entry(row.entity_id) {
                Entry::Occupied(at) => *at.get(),
                Entry::Vacant(slot) => {
                    slot.insert(self.ids.len());
                    self.ids.push(row.entity_id);
                    self.scales.push(0.0);
                    self.data.resize(self.data.len() + self.dims, 0);
                    self.ids.len() - 1
                }
            };
            self.scales[at] = quantize(&row.vector, &mut self.data[at * self.dims..(at + 1) * self.dims]);
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
                self.scales[at] = self.scales[last];
                self.data.copy_within(last * self.dims..(last + 1) * self.dims, at * self.dims);
                self.slot.insert(moved, at);
            }
            self.ids.pop();
            self.scales.pop();
            self.data.truncate(last * self.dims);
        }
    }

    /// What the copy takes in memory, roughly.
    pub fn bytes(&self) -> usize {
        self.data.len() + self.ids.len() * 44
    }

    /// The `k` entities nearest to `query` (a unit vector), best first, with their similarity.
    pub fn nearest(&self, query: &[f32], k: usize, among: Option<&HashSet<i64>>) -> Vec<(i64, f32)> {
        if k == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let mut q = vec![0; self.dims];
        let q_scale = quantize(query, &mut q);
        let mut heap = BinaryHeap::with_capacity(k + 1);
        for ((row, &id), &scale) in self.data.chunks_exact(self.dims).zip(&self.ids).zip(&self.scales) {
            if among.is_some_and(|among| !among.contains(&id)) {
                continue;
            }
            let score = dot(row, &q) as f32 * scale * q_scale;
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

/// `vector` as int8 into `out`, returning the scale that maps it back (0 for a zero vector).
fn quantize(vector: &[f32], out: &mut [i8]) -> f32 {
    let largest = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !largest.is_normal() {
        out.fill(0);
        return 0.0;
    }
    let scale = largest / 127.0;
    for (o, x) in out.iter_mut().zip(vector) {
        *o = (x / scale).round() as i8;
    }
    scale
}

/// Sixteen running sums in i32 (127² × 16 dimensions a lane never overflows below 8M), so the
/// compiler vectorises the widening multiply-adds.
fn dot(a: &[i8], b: &[i8]) -> i32 {
    let mut sums = [0i32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = a16.remainder().iter().zip(b16.remainder()).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..16 {
            sums[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    sums.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(entity_id: i64, seq: i64, vector: &[f32]) -> StoredVector {
        StoredVector { entity_id, seq, vector: vector.to_vec() }
    }

    #[test]
    fn nearest_ranks_by_similarity_among_the_ids_asked_and_replaced_vectors_count_once() {
        let mut index = TenantVectors::default();
        index.apply(vec![row(1, 1, &[1.0, 0.0]), row(2, 2, &[0.0, 1.0]), row(3, 3, &[0.6, 0.8])]);
        assert_eq!(index.nearest(&[1.0, 0.0], 2, None).iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 3]);
        index.apply(vec![row(1, 4, &[0.0, -1.0]), row(4, 5, &[1.0, 0.0, 0.0])]);
        assert_eq!((index.len(), index.seq), (3, 5));
        assert_eq!(index.nearest(&[1.0, 0.0], 3, None).iter().map(|h| h.0).collect::<Vec<_>>(), vec![3, 1, 2]);
        assert!(index.nearest(&[1.0, 0.0, 0.0], 3, None).is_empty());
        index.remove(&[2, 9]);
        assert_eq!(index.nearest(&[1.0, 0.0], 3, None).iter().map(|h| h.0).collect::<Vec<_>>(), vec![3, 1]);
        index.remove(&[1]);
        let last = index.nearest(&[0.6, 0.8], 3, None);
        assert_eq!(last.len(), 1);
        assert!(last[0].0 == 3 && (last[0].1 - 1.0).abs() < 0.005, "{last:?}");
        index.apply(vec![row(5, 6, &[0.8, 0.6]), row(6, 7, &[-1.0, 0.0])]);
        let among = HashSet::from([5, 6, 9]);
        assert_eq!(index.nearest(&[0.6, 0.8], 3, Some(&among)).iter().map(|h| h.0).collect::<Vec<_>>(), vec![5, 6]);
        assert!(index.nearest(&[0.6, 0.8], 3, Some(&HashSet::new())).is_empty());
    }

    #[test]
    fn dot_is_the_sum_of_products_at_any_length() {
        for n in [0usize, 1, 15, 16, 17, 384] {
            let (a, b): (Vec<i8>, Vec<i8>) =
                (0..n).map(|i| (((i % 255) as i32 - 127) as i8, (127 - (i * 7 % 255) as i32) as i8)).unzip();
            let plain: i32 = a.iter().zip(&b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
            assert_eq!(dot(&a, &b), plain, "{n}");
        }
    }

    /// Over random unit vectors, int8 ranks the top ten as f32 does, scores within 0.005.
    #[test]
    fn int8_ranks_as_the_exact_dot_product_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut unit = |dims: usize| {
            let v: Vec<f32> = (0..dims)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
        };
        let rows: Vec<Vec<f32>> = (0..2_000).map(|_| unit(384)).collect();
        let mut index = TenantVectors::default();
        index.apply(rows.iter().enumerate().map(|(i, v)| row(i as i64, i as i64, v)).collect());
        for i in 0..20 {
            // A query near a row, as a real one is near its answers.
            let target = &rows[i * 97];
            let noise = unit(384);
            let query: Vec<f32> = target.iter().zip(&noise).map(|(t, n)| t * 0.6 + n * 0.4).collect();
            let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
            let query: Vec<f32> = query.iter().map(|x| x / norm).collect();
            let mut exact: Vec<(i64, f32)> = (rows.iter().enumerate())
                .map(|(i, v)| (i as i64, v.iter().zip(&query).map(|(a, b)| a * b).sum()))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let found = index.nearest(&query, 10, None);
            let same = found.iter().filter(|(id, _)| exact[..10].iter().any(|(e, _)| e == id)).count();
            assert!(same >= 9, "{same} of the exact top ten");
            assert_eq!(found[0].0, exact[0].0);
            for (id, score) in &found {
                let truth = exact.iter().find(|(e, _)| e == id).unwrap().1;
                assert!((score - truth).abs() < 0.005, "{score} against {truth}");
            }
        }
    }
}
