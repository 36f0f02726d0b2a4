// Ferry's dashboard: draws /api/v1/status, /api/v1/history and the audit log,
// and keeps them current from the /api/v1/stream Server-Sent Events.
"use strict";

const $ = (id) => document.getElementById(id);
const AUDIT_SHOWN = 50;
// The chart is redrawn at most this often, when the status changed.
const HISTORY_EVERY_MS = 3000;
let historyAt = 0;

// The token travels in the URL's fragment (never sent to a server); it is kept
// for this tab only.
(function takeToken() {
  const m = location.hash.match(/token=([0-9A-Za-z._~-]+)/);
  if (m) {
    sessionStorage.setItem("ferry-token", m[1]);
    history.replaceState(null, "", location.pathname);
  }
  $("token").value = sessionStorage.getItem("ferry-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("ferry-token", $("token").value.trim()));
})();

function text(el, value) { el.textContent = value == null ? "" : String(value); }

function el(tag, props, children) {
  const e = document.createElement(tag);
  const { dataset, ...rest } = props || {};
  Object.assign(e, rest);
  Object.assign(e.dataset, dataset || {});
  (children || []).forEach((c) => e.append(c));
  return e;
}

function number(n) { return n == null ? "?" : Number(n).toLocaleString("en"); }

function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "–";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
}

function since(at, now) {
  return at ? duration((Date.parse(now) - Date.parse(at)) / 1000) + " ago" : "";
}

function drawStatus(s) {
  text($("spec"), s.spec);
  text($("route"), s.source + " → " + s.target + " · reads from the " + s.routing.reads + ", writes to the " + s.routing.writes);
  text($("state"), s.state);
  text($("phase"), s.phase ? s.phase + " (" + s.phase_state.replace("_", " ") + ")" : "not started");
  const r = s.runner;
  const runner = !r ? "none has run" : r.running
    ? "running `ferry " + r.command + "` (pid " + r.pid + ", seen " + since(r.last_seen, s.generated_at) + ")"
    : "not running, last seen " + since(r.last_seen, s.generated_at) + (r.exited_at ? " (exited)" : " (stopped without exiting: killed?)");
  text($("runner"), runner);
  $("runner").className = r && r.running ? "ok" : "warn";
  text($("verification"), s.verification || "not yet");
  $("verification").className = s.verification === "pass" ? "ok" : s.verification === "fail" ? "bad" : "";
  text($("generated"), s.generated_at);
  $("generated").dateTime = s.generated_at;
  drawPauses(s.pauses);
  drawRamp(s.cutover, s.generated_at);
  drawPhases(s.phases, s.generated_at);
  drawTables(s.tables);
}

function drawPauses(pauses) {
  text($("pauses"), pauses.length
    ? pauses.map((p) => "PAUSED by " + p.by + " since " + p.since + ": " + p.reason).join(" · ")
    : "No pause in force.");
  $("pauses").className = pauses.length ? "warn" : "";
}

// The read ramp, with a [cutover] section: stages, hold left, and the manual "next".
function drawRamp(c, now) {
  $("ramp").hidden = !c;
  if (!c) return;
  text($("ramp-percent"), c.read_percent + " %");
  const at = c.stages.indexOf(c.read_percent);
  $("ramp-stages").replaceChildren(...c.stages.map((p, i) =>
    el("li", { className: i < at ? "done" : i === at ? "current" : "", textContent: p + " %" })));
  const held = c.stage_started_at ? (Date.parse(now) - Date.parse(c.stage_started_at)) / 1000 : 0;
  text($("ramp-hold"), c.read_percent === 0 ? "reads on the source"
    : held < c.hold_seconds ? duration(c.hold_seconds - held) + " left in this stage's hold"
    : c.advance === "manual" && c.read_percent < 100 ? "held: waiting for Next stage" : "held");
  $("ramp-next").hidden = c.advance !== "manual" || c.read_percent === 0 || c.read_percent >= 100;
  $("ramp-triggered").hidden = !c.triggered;
  text($("ramp-triggered"), c.triggered ? "ROLLBACK TRIGGER: " + c.triggered + " — reads went back to the source" : "");
  $("gates").replaceChildren(...c.gates.map((g) => el("tr", { className: g.breached_seconds != null ? "warn" : "" }, [
    el("th", { scope: "row", textContent: g.trigger }),
    el("td", { textContent: g.shown }),
    el("td", { textContent: g.threshold }),
    el("td", { textContent: g.for_seconds ? duration(g.for_seconds) : "at once" }),
  ])));
  const sh = c.shadow;
  text($("shadow"), "Shadow reads: " + sh.compared + " compared (" + sh.compared_by_application + " by the application), "
    + sh.mismatched + " mismatched, " + sh.rechecked + " equal once replay passed them");
  $("shadow-mismatches").replaceChildren(...sh.recent_mismatches.map((m) => el("li", {
    textContent: m.at + " " + m.subject + " " + m.key + ": " + (m.columns.join(", ") || "differs")
      + (m.detail ? " — " + m.detail : "") + " (" + m.origin + ")",
  })));
}

function drawPhases(phases, now) {
  const list = $("phases");
  list.replaceChildren(...phases.map((p) => {
    const end = p.completed_at || (p.state === "running" ? now : null);
    const took = p.started_at && end ? " · " + duration((Date.parse(end) - Date.parse(p.started_at)) / 1000) : "";
    const li = el("li", { className: p.state }, [
      el("strong", { textContent: p.number + " " + p.name }),
      " — " + p.state.replace("_", " ") + took,
      el("br"),
      el("small", { className: "muted", textContent: p.started_at ? "started " + p.started_at : "" }),
    ]);
    if (p.error) li.append(el("div", { className: "bad", textContent: p.error }));
    return li;
  }));
}

function drawTables(tables) {
  $("tables").replaceChildren(...tables.map((t) => {
    const total = t.rows_total;
    const bar = el("progress", { max: total || 1, value: Math.min(t.rows_copied, total || 0) });
    bar.setAttribute("aria-label", "copy of " + t.target);
    if (t.backfill_complete) bar.value = bar.max;
    const pct = t.backfill_complete ? 100 : total ? Math.min(100, (100 * t.rows_copied) / total) : 0;
    const lag = t.capture && t.capture.pending_changes != null
      ? number(t.capture.pending_changes) + " changes" +
        (t.capture.oldest_pending_seconds != null ? ", " + t.capture.oldest_pending_seconds.toFixed(1) + " s" : "")
      : "–";
    let verified = el("span", { textContent: "not yet" });
    if (t.verification) {
      const v = t.verification;
      verified = el("span", { className: v.passed ? "ok" : "bad" }, [
        (v.passed ? "pass" : "FAIL") + " · " + number(v.differences) + " different · ",
        el("a", { href: "/api/v1/verification/" + encodeURIComponent(t.target), textContent: "rows" }),
      ]);
    }
    return el("tr", { dataset: { table: t.target } }, [
      el("th", { scope: "row", textContent: t.target + (t.source !== t.target ? " ← " + t.source : "") }),
      el("td", {}, [bar, el("small", { textContent: pct.toFixed(1) + " % · " + t.stage })]),
      el("td", { className: "rows", textContent: number(t.rows_copied) + " / " + (t.rows_total_exact ? "" : "~") + number(total) }),
      el("td", { textContent: t.rows_per_second != null ? number(Math.round(t.rows_per_second)) : "–" }),
      el("td", { textContent: t.backfill_complete ? "done" : duration(t.eta_seconds) }),
      el("td", { textContent: lag }),
      el("td", {}, [verified]),
    ]);
  }));
}

// Sums the tables' samples into one series per instant.
function series(samples) {
  const byTime = new Map();
  for (const s of samples) {
    const p = byTime.get(s.at) || { rows: 0, pending: 0 };
    p.rows += s.rows_copied;
    p.pending += s.pending_changes || 0;
    byTime.set(s.at, p);
  }
  return [...byTime.entries()].map(([at, p]) => ({ t: Date.parse(at), ...p })).sort((a, b) => a.t - b.t);
}

function clock(t) { return new Date(t).toISOString().slice(11, 19) + " UTC"; }

function drawChart(svg, points) {
  const span = $(svg.id + "-span");
  if (points.length < 2) {
    svg.innerHTML = '<text x="10" y="20">not enough history yet</text>';
    text(span, "");
    return;
  }
  text(span, clock(points[0].t) + " – " + clock(points[points.length - 1].t));
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const max = Math.max(1, ...points.map((p) => p.v));
  const xy = points.map((p) => ((600 * (p.t - t0)) / Math.max(1, t1 - t0)).toFixed(1) + "," + (150 - (140 * p.v) / max).toFixed(1));
  svg.innerHTML = "";
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", xy.join(" "));
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", "6");
  label.setAttribute("y", "14");
  label.textContent = "max " + number(Math.round(max));
  svg.append(line, label);
}

async function refreshHistory() {
  historyAt = Date.now();
  try {
    const points = series(await (await fetch("/api/v1/history")).json());
    const rate = points.slice(1).map((p, i) => ({ t: p.t, v: Math.max(0, (p.rows - points[i].rows) / Math.max(0.001, (p.t - points[i].t) / 1000)) }));
    drawChart($("chart-rate"), rate);
    drawChart($("chart-lag"), points.map((p) => ({ t: p.t, v: p.pending })));
  } catch (e) { /* the next refresh tries again */ }
}

function addAudit(entry) {
  const list = $("audit");
  list.append(el("li", { textContent: entry.line }));
  while (list.children.length > AUDIT_SHOWN) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

async function control(action) {
  const token = $("token").value.trim();
  const result = $("control-result");
  const done = { pause: "Paused: the run waits before its next batch.", resume: "Resumed.", "cutover/next": "The ramp goes on once this stage has held." };
  const response = await fetch("/api/v1/" + action, {
    method: "POST",
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    body: action === "pause" ? JSON.stringify({ reason: $("reason").value }) : "",
  });
  if (response.ok) {
    text(result, done[action]);
    result.className = "ok";
  } else {
    const body = await response.json().catch(() => ({}));
    text(result, response.status + ": " + (body.error || "refused"));
    result.className = "bad";
    if (response.status === 401) $("token-box").open = true;
  }
}

$("pause").addEventListener("click", () => control("pause"));
$("resume").addEventListener("click", () => control("resume"));
$("ramp-next").addEventListener("click", () => control("cutover/next"));

function connect() {
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("open", () => text($("live"), "live"));
  source.addEventListener("status", (e) => {
    drawStatus(JSON.parse(e.data));
    if (Date.now() - historyAt > HISTORY_EVERY_MS) refreshHistory();
  });
  source.addEventListener("audit", (e) => addAudit(JSON.parse(e.data)));
  source.addEventListener("error", () => text($("live"), "reconnecting…"));
}

fetch("/api/v1/status").then((r) => r.json()).then(drawStatus).catch(() => {});
refreshHistory();
connect();
