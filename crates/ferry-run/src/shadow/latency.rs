//! The latency trigger's value: the target's p99 over the last minute of
//! shadow reads, against the source's p99 measured by the same reads at the
//! start of the ramp (the baseline, kept in the state store so a resumed
//! ramp compares against the same). Each query shape (a table's rows, each
//! custom query) is measured apart; the worst shape is the value.

use crate::error::Result;
use crate::state::StateStore;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Source reads the baseline is measured over.
const BASELINE_READS: usize = 30;
/// The window the target's p99 is measured over.
const WINDOW: Duration = Duration::from_secs(60);
/// Fewer target reads than this in the window give no value yet.
const MIN_READS: usize = 10;
/// Latencies below this count as this: under 10 ms, two engines or two
/// network paths differ by noise, not by degradation.
pub const FLOOR_MS: f64 = 10.0;

#[derive(Debug, Default)]
pub struct Latency {
    /// Fixed once measured: each shape's source p99, in ms.
    baseline: BTreeMap<String, f64>,
    measuring: BTreeMap<String, Vec<f64>>,
    target: BTreeMap<String, VecDeque<(Instant, f64)>>,
}

impl Latency {
    pub fn load(state: &StateStore) -> Result<Latency> {
        let baseline =
            state.meta("cutover_latency_baseline")?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
        Ok(Latency { baseline, ..Latency::default() })
    }

    pub fn save(&self, state: &StateStore) -> Result<()> {
        if !self.baseline.is_empty() {
            state.set_meta("cutover_latency_baseline", &serde_json::to_string(&self.baseline).unwrap_or_default())?;
        }
        Ok(())
    }

    pub fn record(&mut self, shape: &str, source: Duration, target: Duration) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        if !self.baseline.contains_key(shape) {
            let reads = self.measuring.entry(shape.to_string()).or_default();
            reads.push(ms(source));
            if reads.len() >= BASELINE_READS {
                let p99 = p99(reads.clone());
                self.baseline.insert(shape.to_string(), p99);
                self.measuring.remove(shape);
            }
        }
        let window = self.target.entry(shape.to_string()).or_default();
        window.push_back((Instant::now(), ms(target)));
        while window.front().is_some_and(|(at, _)| at.elapsed() > WINDOW) {
            window.pop_front();
        }
    }

    /// The worst shape's target p99 over its source baseline (both at least
    /// [`FLOOR_MS`]), with the shape; `None` before a baseline and a window exist.
    pub fn ratio(&self) -> Option<(String, f64)> {
        self.target
            .iter()
            .filter(|(_, w)| w.len() >= MIN_READS)
            .filter_map(|(shape, window)| {
                let baseline = self.baseline.get(shape)?.max(FLOOR_MS);
                let p99 = p99(window.iter().map(|(_, ms)| *ms).collect()).max(FLOOR_MS);
                Some((shape.clone(), p99 / baseline))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

fn p99(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 * 0.99).ceil() as usize).clamp(1, values.len()) - 1;
    values[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_the_worst_shape_over_its_floored_baseline() {
        let mut latency = Latency::default();
        let ms = Duration::from_millis;
        for _ in 0..BASELINE_READS {
            latency.record("users", ms(1), ms(2));
            latency.record("orders of a user", ms(20), ms(20));
        }
        // Both under the floor: equal, whatever the engines' own speeds.
        let (_, users) = latency.clone_ratio_of("users");
        assert_eq!(users, 1.0);
        for _ in 0..20 {
            latency.record("orders of a user", ms(20), ms(200));
        }
        let (shape, ratio) = latency.ratio().unwrap();
        assert_eq!(shape, "orders of a user");
        assert!((ratio - 10.0).abs() < 1e-9, "{ratio}");
        assert!(Latency::default().ratio().is_none());
    }

    impl Latency {
        fn clone_ratio_of(&self, shape: &str) -> (String, f64) {
            let only = Latency {
                baseline: self.baseline.clone(),
                measuring: BTreeMap::new(),
                target: self.target.iter().filter(|(s, _)| *s == shape).map(|(s, w)| (s.clone(), w.clone())).collect(),
            };
            only.ratio().unwrap()
        }
    }
}
