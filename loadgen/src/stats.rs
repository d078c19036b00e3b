//! Percentiles over recorded samples (sorted vector; the runs record at most a few million).

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// Nearest-rank percentile `q` (0..=1) of sorted `samples`.
fn rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Percentiles of nanosecond samples, reported in microseconds.
pub fn percentiles(mut samples_ns: Vec<u64>) -> Percentiles {
    samples_ns.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    Percentiles {
        count: samples_ns.len(),
        p50_us: us(rank(&samples_ns, 0.50)),
        p99_us: us(rank(&samples_ns, 0.99)),
        p999_us: us(rank(&samples_ns, 0.999)),
        max_us: us(samples_ns.last().copied().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = percentiles((1..=1000).map(|i| i * 1000).collect());
        assert_eq!(p.p50_us, 500.0);
        assert_eq!(p.p99_us, 990.0);
        assert_eq!(p.p999_us, 999.0);
        assert_eq!(p.max_us, 1000.0);
        assert_eq!(percentiles(Vec::new()).count, 0);
    }
}
