//! What the benchmark tools share: nearest-rank percentiles.

/// The nearest-rank `p`th percentile of `sorted` (ascending) as f64, or 0 when it is empty.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).map_or(0.0, |&v| v.into())
}
