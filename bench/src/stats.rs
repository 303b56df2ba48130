//! Per-connection bookkeeping of what arrived, and the summaries the reports print.
//!
//! Each receiving connection keeps its own trackers and histogram (no locks on the receive
//! path); they are merged once at the end of a run.

use hdrhistogram::Histogram;
use serde::Serialize;

/// What one receiver saw from one sender: which sequence numbers, in which order.
///
/// A bitset of seen sequence numbers makes duplicates exact (a redelivered old message is a
/// duplicate, not an inversion); an inversion is a new message older than one already seen.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    seen: Vec<u64>,
    unique: u64,
    highest: Option<u64>,
    /// Messages seen twice or more.
    pub duplicates: u64,
    /// Messages that arrived after a later message of the same sender.
    pub inversions: u64,
}

impl SeqTracker {
    /// Records the arrival of `seq`.
    pub fn record(&mut self, seq: u64) {
        let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(highest) if seq < highest => self.inversions += 1,
            _ => self.highest = Some(seq),
        }
    }

    /// Distinct messages seen.
    pub fn unique(&self) -> u64 {
        self.unique
    }
}

/// A new latency histogram in microseconds (1 µs to 1 h, 3 significant digits).
#[allow(clippy::expect_used)]
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, 3 digits ≤ 5): this
    // cannot fail, and a histogram that silently measured nothing would be worse than a panic.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
    /// `(percentile, µs)` points for a percentile chart.
    pub curve: Vec<(f64, u64)>,
}

/// Percentiles plotted in reports (log-spaced towards the tail).
const CURVE: [f64; 10] = [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99, 100.0];

impl LatencySummary {
    /// Summarises `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            curve: CURVE
                .iter()
                .map(|&p| (p, histogram.value_at_percentile(p)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeqTracker;

    #[test]
    fn tells_duplicates_from_inversions() {
        let mut t = SeqTracker::default();
        for seq in [0, 1, 3, 2, 3, 200, 0] {
            t.record(seq);
        }
        assert_eq!((t.unique(), t.duplicates, t.inversions), (5, 2, 1));
    }
}
