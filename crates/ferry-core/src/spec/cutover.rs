//! `[cutover]`: the read ramp, its shadow reads and its rollback triggers.

use super::{Ctx, SpecError};
use crate::usersql::Fragment;
use crate::EngineKind;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// `[cutover]`: reads move to the target in stages, each held with its gates green.
#[derive(Debug, Clone, PartialEq)]
pub struct CutoverPolicy {
    /// Percentages of reads on the target, rising, ending at 100.
    pub stages: Vec<u8>,
    /// How long each stage holds, every gate green, before the next.
    pub hold: Duration,
    pub advance: Advance,
    /// Where the flagd flag definitions are written (atomically) at each stage.
    pub flagd_file: Option<PathBuf>,
    /// Ferry's own shadow reads per second (0: none).
    pub shadow_rate: f64,
    /// The application's query shapes, read from both sides and compared.
    pub shadow: Vec<ShadowQuery>,
    /// Where the application's error rate is read, when it is.
    pub prometheus: Option<PrometheusQuery>,
    /// Every trigger, the method's defaults included unless overridden.
    pub triggers: Vec<Trigger>,
}

impl Default for CutoverPolicy {
    fn default() -> Self {
        CutoverPolicy {
            stages: vec![1, 10, 50, 100],
            hold: Duration::from_secs(15 * 60),
            advance: Advance::Auto,
            flagd_file: None,
            shadow_rate: 20.0,
            shadow: Vec::new(),
            prometheus: None,
            triggers: TriggerMetric::ALL.iter().map(|m| m.default_trigger()).collect(),
        }
    }
}

impl CutoverPolicy {
    pub fn trigger(&self, metric: TriggerMetric) -> Option<&Trigger> {
        self.triggers.iter().find(|t| t.metric == metric)
    }
}

/// How the read ramp moves from one stage to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Once the hold elapsed with every gate green.
    Auto,
    /// Also waits for `ferry cutover --next` (or the dashboard's button).
    Manual,
}

/// `[[cutover.shadow]]`: one of the application's queries, run on both sides
/// with parameters drawn from sampled keys of `table`, results compared.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowQuery {
    pub name: String,
    /// The source table (`[[table]] from`) whose sampled keys fill `{column}` placeholders.
    pub table: Option<String>,
    pub source_sql: String,
    pub target_sql: String,
    /// Whether row order is part of the answer (an `ORDER BY` the application relies on).
    pub ordered: bool,
}

/// `[cutover] prometheus` and `query`: the application's error rate, as a fraction.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusQuery {
    pub url: String,
    pub query: String,
}

/// What a rollback trigger watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriggerMetric {
    /// Shadow reads that differ once lag is ruled out, in percent of those compared.
    MismatchRate,
    /// The oldest captured change not yet replayed, in seconds.
    ReplayLag,
    /// The target's p99 read latency over the source's, measured by the same shadow reads.
    LatencyRatio,
    /// The application's errors, in percent of its requests (Prometheus or its own reports).
    ErrorRate,
}

impl TriggerMetric {
    pub const ALL: [TriggerMetric; 4] =
        [TriggerMetric::MismatchRate, TriggerMetric::ReplayLag, TriggerMetric::LatencyRatio, TriggerMetric::ErrorRate];

    /// The name in the spec, the audit log and the metrics' `trigger` label.
    pub fn name(self) -> &'static str {
        match self {
            TriggerMetric::MismatchRate => "mismatch_rate",
            TriggerMetric::ReplayLag => "replay_lag",
            TriggerMetric::LatencyRatio => "latency_ratio",
            TriggerMetric::ErrorRate => "error_rate",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerMetric> {
        TriggerMetric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// How a value of this metric reads, with its unit.
    pub fn format(self, value: f64) -> String {
        match self {
            TriggerMetric::MismatchRate | TriggerMetric::ErrorRate => format!("{value:.4}%"),
            TriggerMetric::ReplayLag => format!("{value:.1}s"),
            TriggerMetric::LatencyRatio => format!("{value:.2}x"),
        }
    }

    /// The method's defaults (METHOD.md): mismatch above 0.01 %, lag above
    /// 30 s, p99 above 1.10 × the baseline for a minute, errors above 0.1 % for a minute.
    pub fn default_trigger(self) -> Trigger {
        let (above, window) = match self {
            TriggerMetric::MismatchRate => (0.01, 0),
            TriggerMetric::ReplayLag => (30.0, 0),
            TriggerMetric::LatencyRatio => (1.10, 60),
            TriggerMetric::ErrorRate => (0.1, 60),
        };
        Trigger { metric: self, above, window: Duration::from_secs(window) }
    }
}

/// `[[cutover.trigger]]`: reads go back to the source when `metric` stays above `above` for `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub metric: TriggerMetric,
    /// In the metric's unit: percent for rates, seconds for lag, a ratio for latency.
    pub above: f64,
    /// `for`: how long the value must stay above before the trigger fires (0: at once).
    pub window: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCutover {
    stages: Option<Spanned<Vec<i64>>>,
    hold: Option<Spanned<String>>,
    advance: Option<Spanned<String>>,
    flagd_file: Option<Spanned<String>>,
    max_lag: Option<Spanned<String>>,
    shadow_rate: Option<Spanned<f64>>,
    prometheus: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    #[serde(default)]
    shadow: Vec<Spanned<RawShadow>>,
    #[serde(default)]
    trigger: Vec<Spanned<RawTrigger>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShadow {
    name: Spanned<String>,
    table: Option<String>,
    source_sql: Spanned<String>,
    target_sql: Spanned<String>,
    #[serde(default)]
    ordered: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    metric: Spanned<String>,
    above: Spanned<f64>,
    #[serde(rename = "for")]
    window: Option<Spanned<String>>,
}

pub(super) fn parse(
    ctx: &Ctx,
    raw: &RawCutover,
    spec_path: &Path,
    source: Option<EngineKind>,
    target: Option<EngineKind>,
) -> Result<CutoverPolicy, SpecError> {
    let mut policy = CutoverPolicy::default();
    if let Some(stages) = &raw.stages {
        let list = stages.get_ref();
        let rising = list.windows(2).all(|w| w[0] < w[1]);
        if list.is_empty() || !rising || list[0] < 1 || list.last() != Some(&100) {
            return Err(ctx.error(
                stages.span(),
                format!("`cutover.stages`: {list:?} is not a rising list of percentages ending at 100"),
                "write e.g. [1, 10, 50, 100]",
            ));
        }
        policy.stages = list.iter().map(|p| *p as u8).collect();
    }
    if let Some(v) = &raw.hold {
        policy.hold = duration(ctx, v, "cutover.hold")?;
    }
    if let Some(a) = &raw.advance {
        policy.advance = match a.get_ref().as_str() {
            "auto" => Advance::Auto,
            "manual" => Advance::Manual,
            other => {
                return Err(ctx.error(
                    a.span(),
                    format!("`cutover.advance`: unknown value `{other}`"),
                    "use \"auto\" (the default) or \"manual\" (each stage waits for `ferry cutover --next`)",
                ))
            }
        };
    }
    if let Some(f) = &raw.flagd_file {
        let base = spec_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        policy.flagd_file = Some(base.join(f.get_ref()));
    }
    if let Some(rate) = &raw.shadow_rate {
        if !(0.0..=10_000.0).contains(rate.get_ref()) {
            return Err(ctx.error(
                rate.span(),
                format!("`cutover.shadow_rate`: {} is not a rate of reads per second", rate.get_ref()),
                "write a number from 0 (no shadow reads of Ferry's own) to 10000; the default is 20",
            ));
        }
        policy.shadow_rate = *rate.get_ref();
    }
    policy.prometheus = prometheus(ctx, raw)?;
    for entry in &raw.shadow {
        let shadow = shadow_query(ctx, entry.get_ref(), source, target)?;
        if policy.shadow.iter().any(|s| s.name == shadow.name) {
            return Err(ctx.error(entry.span(), "every [[cutover.shadow]] needs a name of its own", ""));
        }
        policy.shadow.push(shadow);
    }
    triggers(ctx, raw, &mut policy)?;
    Ok(policy)
}

fn duration(ctx: &Ctx, v: &Spanned<String>, key: &str) -> Result<Duration, SpecError> {
    ctx.duration(v, key, "\"15m\" or \"30s\"")
}

fn prometheus(ctx: &Ctx, raw: &RawCutover) -> Result<Option<PrometheusQuery>, SpecError> {
    match (&raw.prometheus, &raw.query) {
        (None, None) => Ok(None),
        (Some(url), Some(query)) => {
            let url = url.get_ref().trim_end_matches('/').to_string();
            if !url.starts_with("http://") {
                return Err(ctx.error(
                    raw.prometheus.as_ref().map_or(0..0, |p| p.span()),
                    format!("`cutover.prometheus`: `{url}` is not an http:// URL"),
                    "give the Prometheus server's base URL, e.g. \"http://127.0.0.1:9090\" (https is not supported \
                     yet: reach it through a local plain-HTTP address)",
                ));
            }
            Ok(Some(PrometheusQuery { url, query: query.get_ref().clone() }))
        }
        (Some(p), None) => Err(ctx.error(
            p.span(),
            "`cutover.prometheus` needs `cutover.query`",
            "add query = \"…\": a PromQL expression whose value is the error rate as a fraction, e.g. \
             sum(rate(http_requests_total{code=~\"5..\"}[1m])) / sum(rate(http_requests_total[1m]))",
        )),
        (None, Some(q)) => Err(ctx.error(
            q.span(),
            "`cutover.query` needs `cutover.prometheus`",
            "add prometheus = \"http://host:9090\": the server the query is sent to",
        )),
    }
}

/// The `{column}` placeholders of a shadow query, in order of appearance.
pub fn placeholders(sql: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                found.push(after[..close].to_string());
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// `sql` with every `{column}` placeholder replaced by `value(column)`.
pub fn fill_placeholders(sql: &str, mut value: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_name(&after[..close]) => {
                out.push_str(&value(&after[..close]));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn shadow_query(
    ctx: &Ctx,
    raw: &RawShadow,
    source: Option<EngineKind>,
    target: Option<EngineKind>,
) -> Result<ShadowQuery, SpecError> {
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(ctx.error(
            raw.name.span(),
            "`cutover.shadow.name` is empty",
            "name the query shape, e.g. \"orders of a user\"",
        ));
    }
    for (sql, key, engine) in [(&raw.source_sql, "source_sql", source), (&raw.target_sql, "target_sql", target)] {
        // Placeholders are filled with literals before the query runs; validated with one in their place.
        let probe = fill_placeholders(sql.get_ref(), |_| "0".into());
        ctx.user_sql(sql.span(), &format!("cutover.shadow.{key}"), &probe, Fragment::Query, engine)?;
    }
    let (s, t) = (placeholders(raw.source_sql.get_ref()), placeholders(raw.target_sql.get_ref()));
    let (mut s_sorted, mut t_sorted) = (s.clone(), t.clone());
    s_sorted.sort();
    s_sorted.dedup();
    t_sorted.sort();
    t_sorted.dedup();
    if s_sorted != t_sorted {
        return Err(ctx.error(
            raw.target_sql.span(),
            format!("`cutover.shadow` \"{name}\": the queries' placeholders differ ({s:?} and {t:?})"),
            "both queries take the same {column} placeholders, named after the source table's key columns",
        ));
    }
    Ok(ShadowQuery {
        name,
        table: raw.table.clone(),
        source_sql: raw.source_sql.get_ref().clone(),
        target_sql: raw.target_sql.get_ref().clone(),
        ordered: raw.ordered,
    })
}

/// The method's defaults, then `max_lag`, then every `[[cutover.trigger]]` in place of its metric's default.
fn triggers(ctx: &Ctx, raw: &RawCutover, policy: &mut CutoverPolicy) -> Result<(), SpecError> {
    let mut set = |trigger: Trigger| {
        if let Some(slot) = policy.triggers.iter_mut().find(|t| t.metric == trigger.metric) {
            *slot = trigger;
        }
    };
    if let Some(v) = &raw.max_lag {
        let lag = duration(ctx, v, "cutover.max_lag")?;
        set(Trigger { above: lag.as_secs_f64(), ..TriggerMetric::ReplayLag.default_trigger() });
    }
    let mut seen = Vec::new();
    for entry in &raw.trigger {
        let raw = entry.get_ref();
        let metric = TriggerMetric::parse(raw.metric.get_ref()).ok_or_else(|| {
            ctx.error(
                raw.metric.span(),
                format!("`cutover.trigger.metric`: unknown metric `{}`", raw.metric.get_ref()),
                "use mismatch_rate (percent), replay_lag (seconds), latency_ratio (target p99 / source p99) \
                 or error_rate (percent)",
            )
        })?;
        if seen.contains(&metric) {
            return Err(ctx.error(
                entry.span(),
                format!("`{}` has two [[cutover.trigger]] entries", metric.name()),
                "keep one per metric",
            ));
        }
        seen.push(metric);
        if !raw.above.get_ref().is_finite() || *raw.above.get_ref() < 0.0 {
            return Err(ctx.error(raw.above.span(), "`cutover.trigger.above` must be a number ≥ 0", ""));
        }
        let window = raw.window.as_ref().map(|w| duration(ctx, w, "cutover.trigger.for")).transpose()?;
        set(Trigger { metric, above: *raw.above.get_ref(), window: window.unwrap_or(metric.default_trigger().window) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_column_names_in_braces() {
        let sql = "SELECT count(*) FROM orders WHERE user_id = {id} AND meta = '{\"a\": 1}' AND t = {tenant_id}";
        assert_eq!(placeholders(sql), vec!["id", "tenant_id"]);
        let filled = fill_placeholders(sql, |c| format!("<{c}>"));
        assert_eq!(
            filled,
            "SELECT count(*) FROM orders WHERE user_id = <id> AND meta = '{\"a\": 1}' AND t = <tenant_id>"
        );
    }

    #[test]
    fn every_metric_has_a_default_trigger_and_a_name_that_parses() {
        let policy = CutoverPolicy::default();
        for metric in TriggerMetric::ALL {
            assert_eq!(TriggerMetric::parse(metric.name()), Some(metric));
            assert_eq!(policy.trigger(metric), Some(&metric.default_trigger()));
        }
    }
}
