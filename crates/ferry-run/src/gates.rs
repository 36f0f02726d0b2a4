//! The read ramp's rollback triggers: each second, every trigger's value
//! against its threshold; a value above its threshold for the trigger's
//! `for` window fires it. Values come from the shadow reads (mismatch rate,
//! latency ratio), the replay (lag), and the application's error rate — read
//! from a Prometheus server with a PromQL query, or from the application's
//! own reports to `POST /api/v1/shadow`.

use crate::state::{now, timestamp};
use ferry_core::spec::{PrometheusQuery, Trigger, TriggerMetric};
use ferry_core::status::GateStatus;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often Prometheus is asked (its series move at its scrape interval anyway).
const PROMETHEUS_EVERY: Duration = Duration::from_secs(2);
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(3);

/// A value, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Value(f64),
    Unmeasured(String),
}

pub struct Gates {
    triggers: Vec<Trigger>,
    breached_since: BTreeMap<TriggerMetric, Instant>,
    prometheus: Option<PrometheusQuery>,
    asked: Option<(Instant, Reading)>,
}

impl Gates {
    pub fn new(triggers: &[Trigger], prometheus: Option<PrometheusQuery>) -> Gates {
        Gates { triggers: triggers.to_vec(), breached_since: BTreeMap::new(), prometheus, asked: None }
    }

    /// Every trigger's status for `readings`, and the first that fires.
    pub fn evaluate(&mut self, readings: &BTreeMap<TriggerMetric, Reading>) -> (Vec<GateStatus>, Option<GateStatus>) {
        let mut statuses = Vec::new();
        let mut fired = None;
        let at = timestamp(now());
        for trigger in &self.triggers {
            let reading = readings.get(&trigger.metric).cloned().unwrap_or(Reading::Unmeasured("not measured".into()));
            let value = match &reading {
                Reading::Value(v) => Some(*v),
                Reading::Unmeasured(_) => None,
            };
            let breached = value.is_some_and(|v| v > trigger.above);
            let since = if breached {
                Some(*self.breached_since.entry(trigger.metric).or_insert_with(Instant::now))
            } else {
                self.breached_since.remove(&trigger.metric);
                None
            };
            let status = GateStatus {
                trigger: trigger.metric.name().into(),
                value,
                shown: match &reading {
                    Reading::Value(v) => trigger.metric.format(*v),
                    Reading::Unmeasured(why) => why.clone(),
                },
                above: trigger.above,
                threshold: trigger.metric.format(trigger.above),
                for_seconds: trigger.window.as_secs_f64(),
                breached_seconds: since.map(|s| s.elapsed().as_secs_f64()),
                measured_at: at.clone(),
            };
            if fired.is_none() && since.is_some_and(|s| s.elapsed() >= trigger.window) {
                fired = Some(status.clone());
            }
            statuses.push(status);
        }
        (statuses, fired)
    }

    /// The application's error rate in percent from Prometheus, asked at most every [`PROMETHEUS_EVERY`].
    pub async fn prometheus_error_rate(&mut self) -> Option<Reading> {
        let query = self.prometheus.clone()?;
        if let Some((at, reading)) = &self.asked {
            if at.elapsed() < PROMETHEUS_EVERY {
                return Some(reading.clone());
            }
        }
        let reading = tokio::task::spawn_blocking(move || ask_prometheus(&query))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            .map_or_else(Reading::Unmeasured, |v| {
                v.map_or(Reading::Unmeasured("no series".into()), |f| Reading::Value(f * 100.0))
            });
        self.asked = Some((Instant::now(), reading.clone()));
        Some(reading)
    }
}

/// The query's value (the largest, for a vector): `Ok(None)` when it has no series.
fn ask_prometheus(q: &PrometheusQuery) -> Result<Option<f64>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(PROMETHEUS_TIMEOUT)).build().into();
    let text = agent
        .get(format!("{}/api/v1/query", q.url))
        .query("query", &q.query)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| format!("Prometheus at {} did not answer: {e}", q.url))?;
    parse_prometheus(&text)
}

fn parse_prometheus(text: &str) -> Result<Option<f64>, String> {
    let answer: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("Prometheus answered no JSON: {e}"))?;
    if answer["status"] != "success" {
        return Err(format!("Prometheus refused the query: {}", answer["error"].as_str().unwrap_or("no reason given")));
    }
    let number =
        |pair: &serde_json::Value| pair[1].as_str().and_then(|s| s.parse::<f64>().ok()).filter(|f| f.is_finite());
    let data = &answer["data"];
    Ok(match data["resultType"].as_str() {
        Some("scalar") => number(&data["result"]),
        Some("vector") => {
            data["result"].as_array().into_iter().flatten().filter_map(|s| number(&s["value"])).max_by(f64::total_cmp)
        }
        other => {
            return Err(format!("the query answers a {}; give one whose value is a number", other.unwrap_or("nothing")))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_fires_once_its_value_stayed_above_for_its_window() {
        let instant = Trigger { metric: TriggerMetric::MismatchRate, above: 0.01, window: Duration::ZERO };
        let slow = Trigger { metric: TriggerMetric::ErrorRate, above: 0.1, window: Duration::from_secs(3600) };
        let mut gates = Gates::new(&[instant, slow], None);
        let readings = |m: f64, e: f64| {
            BTreeMap::from([
                (TriggerMetric::MismatchRate, Reading::Value(m)),
                (TriggerMetric::ErrorRate, Reading::Value(e)),
            ])
        };
        let (statuses, fired) = gates.evaluate(&readings(0.0, 5.0));
        assert!(fired.is_none(), "the error rate must stay above for an hour");
        assert_eq!(statuses[1].shown, "5.0000%");
        assert!(statuses[1].breached_seconds.is_some());
        let (_, fired) = gates.evaluate(&readings(0.5, 0.0));
        assert_eq!(fired.map(|f| f.trigger), Some("mismatch_rate".to_string()));
        let (statuses, _) = gates.evaluate(&BTreeMap::new());
        assert_eq!(statuses[0].value, None);
    }

    #[test]
    fn prometheus_answers_are_read_as_numbers() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"1"},"value":[1.5,"0.002"]},{"metric":{"a":"2"},"value":[1.5,"0.004"]}]}}"#;
        assert_eq!(parse_prometheus(vector), Ok(Some(0.004)));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_prometheus(empty), Ok(None));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.5"]}}"#;
        assert_eq!(parse_prometheus(scalar), Ok(Some(0.5)));
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"NaN"]}}"#;
        assert_eq!(parse_prometheus(nan), Ok(None));
        let bad = r#"{"status":"error","error":"parse error"}"#;
        assert!(parse_prometheus(bad).unwrap_err().contains("parse error"));
    }
}
