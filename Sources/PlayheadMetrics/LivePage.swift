/// `GET /`: the built-in live page. One self-contained HTML document (inline CSS and JavaScript, no
/// external assets) that fetches `/live.json` every second and shows the key figures, sparklines of
/// the last minutes and the most watched content. See docs/live-page.md.
public enum LivePage {
    public static let contentType = "text/html; charset=utf-8"

    public static let html: [UInt8] = Array(source.utf8)

    static let source = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Playhead live</title>
<style>
  :root { --bg:#0f1419; --card:#171e26; --line:#263240; --text:#e6edf3; --dim:#8b98a5; --accent:#4fb3ff; --warn:#ffb454; --bad:#ff6b6b; --good:#59d185; }
  * { box-sizing: border-box; }
  body { margin:0; padding:20px 24px; background:var(--bg); color:var(--text); font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
  header { display:flex; align-items:baseline; gap:16px; margin-bottom:16px; }
  h1 { font-size:20px; margin:0; letter-spacing:.02em; }
  h2 { font-size:13px; text-transform:uppercase; letter-spacing:.08em; color:var(--dim); margin:22px 0 10px; font-weight:600; }
  #status { color:var(--dim); font-size:12px; }
  #status.stale { color:var(--bad); }
  .grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(210px,1fr)); gap:12px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px 8px; }
  .label { color:var(--dim); font-size:12px; }
  .value { font-size:28px; font-weight:600; font-variant-numeric:tabular-nums; margin:2px 0 4px; white-space:nowrap; }
  .unit { font-size:13px; color:var(--dim); font-weight:400; margin-left:4px; }
  canvas.spark { width:100%; height:36px; display:block; }
  table { width:100%; border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
  th, td { text-align:left; padding:7px 12px; border-bottom:1px solid var(--line); }
  td { overflow-wrap:anywhere; }
  body.stale .value, body.stale canvas.spark, body.stale table { opacity:.35; }
  th { color:var(--dim); font-weight:600; font-size:12px; }
  td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
  tr:last-child td { border-bottom:none; }
  .empty { color:var(--dim); }
</style>
</head>
<body>
<header>
  <h1>Playhead live</h1>
  <span id="status">connecting…</span>
</header>

<h2>Pipeline</h2>
<div class="grid">
  <div class="card"><div class="label">Events accepted</div><div class="value"><span id="fig-events-per-second">–</span><span class="unit">/s</span></div><canvas class="spark" id="spark-events-per-second" data-series="events_per_second" data-color="#4fb3ff"></canvas></div>
  <div class="card"><div class="label">Events rejected</div><div class="value"><span id="fig-rejected-per-second">–</span><span class="unit">/s</span></div><canvas class="spark" id="spark-rejected-per-second" data-series="rejected_per_second" data-color="#ff6b6b"></canvas></div>
  <div class="card"><div class="label">HTTP requests</div><div class="value"><span id="fig-requests-per-second">–</span><span class="unit">/s</span></div><canvas class="spark" id="spark-requests-per-second" data-series="requests_per_second" data-color="#4fb3ff"></canvas></div>
  <div class="card"><div class="label">Ingest latency p99 (p50 <span id="fig-p50-latency-ms">–</span> ms)</div><div class="value"><span id="fig-p99-latency-ms">–</span><span class="unit">ms</span></div><canvas class="spark" id="spark-p99-latency-ms" data-series="p99_latency_ms" data-color="#ffb454"></canvas></div>
  <div class="card"><div class="label">Log append p99</div><div class="value"><span id="fig-log-append-p99-ms">–</span><span class="unit">ms</span></div><canvas class="spark" id="spark-log-append-p99-ms" data-series="log_append_p99_ms" data-color="#ffb454"></canvas></div>
  <div class="card"><div class="label">Consumer lag</div><div class="value"><span id="fig-consumer-lag">–</span><span class="unit">events</span></div><canvas class="spark" id="spark-consumer-lag" data-series="consumer_lag" data-color="#c792ea"></canvas></div>
  <div class="card"><div class="label">Lake rows written</div><div class="value"><span id="fig-lake-rows-per-second">–</span><span class="unit">/s</span></div><canvas class="spark" id="spark-lake-rows-per-second" data-series="lake_rows_per_second" data-color="#59d185"></canvas></div>
  <div class="card"><div class="label">Last lake flush</div><div class="value"><span id="fig-lake-last-flush">–</span><span class="unit">s ago</span></div><canvas class="spark" id="spark-lake-last-flush" data-series="lake_last_flush_age_seconds" data-color="#59d185"></canvas></div>
  <div class="card"><div class="label">Resident memory</div><div class="value"><span id="fig-rss-mb">–</span><span class="unit">MiB</span></div><canvas class="spark" id="spark-rss-mb" data-series="rss_bytes" data-color="#8b98a5"></canvas></div>
</div>

<h2>Viewers now</h2>
<div class="grid">
  <div class="card"><div class="label">Concurrent viewers</div><div class="value"><span id="fig-concurrent-viewers">–</span></div><div class="label">by type: <span id="fig-viewers-by-type">–</span></div><canvas class="spark" id="spark-concurrent-viewers" data-series="concurrent_viewers" data-color="#4fb3ff"></canvas></div>
  <div class="card"><div class="label">Active sessions</div><div class="value"><span id="fig-active-sessions">–</span></div><canvas class="spark" id="spark-active-sessions" data-series="active_sessions" data-color="#c792ea"></canvas></div>
  <div class="card"><div class="label">Plays started</div><div class="value"><span id="fig-plays-started">–</span></div><div class="label">ad plays <span id="fig-ad-plays">–</span> · completions <span id="fig-completions">–</span></div></div>
  <div class="card"><div class="label">Watch time</div><div class="value"><span id="fig-watch-time-hours">–</span><span class="unit">h</span></div><div class="label">by type, h: <span id="fig-watch-time-by-type">–</span></div></div>
</div>

<h2>Top content (by current viewers)</h2>
<table id="top-content">
  <thead><tr><th>#</th><th>Title</th><th>Content ID</th><th>Type</th><th class="num">Viewers</th></tr></thead>
  <tbody><tr><td colspan="5" class="empty">no one is watching</td></tr></tbody>
</table>

<script>
(function () {
  "use strict";
  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    return Number(v).toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: digits });
  }
  // Rates: one decimal below 10, whole numbers above. Latencies: two decimals below 10 ms, else one.
  function rate(v) { return fmt(v, (v !== null && v !== undefined && Math.abs(v) < 10) ? 1 : 0); }
  function millis(v) { return fmt(v, (v !== null && v !== undefined && Math.abs(v) < 10) ? 2 : 1); }
  function count(v) { return fmt(v, 0); }
  function set(id, text) { var el = document.getElementById(id); if (el && el.textContent !== text) el.textContent = text; }
  function byType(obj, format) {
    var parts = [];
    for (var k in (obj || {})) parts.push(k + " " + format(obj[k]));
    return parts.length ? parts.join(" · ") : "–";
  }
  function sum(obj) { var s = 0; if (obj) for (var k in obj) s += obj[k] || 0; return s; }

  function drawSpark(canvas, values) {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var pts = [];
    for (var i = 0; i < values.length; i++) if (values[i] !== null && isFinite(values[i])) pts.push([i, values[i]]);
    if (pts.length < 2) return;
    var max = -Infinity, min = Infinity;
    pts.forEach(function (p) { if (p[1] > max) max = p[1]; if (p[1] < min) min = p[1]; });
    if (min > 0) min = 0;
    var span = (max - min) || 1, n = Math.max(values.length - 1, 1);
    ctx.beginPath();
    pts.forEach(function (p, j) {
      var x = p[0] / n * (w - 2) + 1, y = h - 2 - (p[1] - min) / span * (h - 4);
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = canvas.getAttribute("data-color") || "#4fb3ff";
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(pts[pts.length - 1][0] / n * (w - 2) + 1, h);
    ctx.lineTo(pts[0][0] / n * (w - 2) + 1, h);
    ctx.closePath();
    ctx.globalAlpha = 0.15;
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fill();
    ctx.globalAlpha = 1;
  }

  function renderTop(rows) {
    var body = document.querySelector("#top-content tbody");
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!rows || rows.length === 0) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = 5; td.className = "empty"; td.textContent = "no one is watching";
      tr.appendChild(td); body.appendChild(tr); return;
    }
    rows.forEach(function (row, i) {
      var tr = document.createElement("tr");
      [String(i + 1), row.title || "", row.content_id, row.content_type, count(row.viewers)].forEach(function (text, j) {
        var td = document.createElement("td");
        td.textContent = text;
        if (j === 4) td.className = "num";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  var lastOk = 0;
  function render(data) {
    var l = data.latest || {};
    set("fig-events-per-second", rate(l.events_per_second));
    set("fig-rejected-per-second", rate(l.rejected_per_second));
    set("fig-requests-per-second", rate(l.requests_per_second));
    set("fig-p50-latency-ms", millis(l.p50_latency_ms));
    set("fig-p99-latency-ms", millis(l.p99_latency_ms));
    set("fig-log-append-p99-ms", millis(l.log_append_p99_ms));
    set("fig-consumer-lag", count(l.consumer_lag));
    set("fig-lake-rows-per-second", rate(l.lake_rows_per_second));
    set("fig-lake-last-flush", count(l.lake_last_flush_age_seconds));
    set("fig-rss-mb", fmt(l.rss_bytes === null || l.rss_bytes === undefined ? null : l.rss_bytes / 1048576, 1));
    var c = data.content;
    set("fig-concurrent-viewers", count(c ? c.concurrent_viewers : l.concurrent_viewers));
    set("fig-active-sessions", count(c ? c.active_sessions : l.active_sessions));
    if (c) {
      set("fig-plays-started", count(sum(c.plays_started)));
      set("fig-ad-plays", count(c.ad_plays));
      set("fig-completions", count(sum(c.completions)));
      set("fig-watch-time-hours", fmt(sum(c.watch_time_seconds) / 3600, 2));
      // Viewers now by type go with the viewers; watch time by type (hours since start) with the watch time.
      set("fig-viewers-by-type", byType(c.concurrent_viewers_by_content_type, count));
      set("fig-watch-time-by-type", byType(c.watch_time_seconds, function (v) { return fmt(v / 3600, 2); }));
      renderTop(c.top_content);
    }
    var series = data.series || {};
    var canvases = document.querySelectorAll("canvas.spark");
    for (var i = 0; i < canvases.length; i++) {
      var values = series[canvases[i].getAttribute("data-series")];
      if (values) drawSpark(canvases[i], values);
    }
  }

  function tick() {
    fetch("live.json", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        render(data);
        lastOk = Date.now();
        var s = document.getElementById("status");
        s.className = "";
        document.body.classList.remove("stale");
        s.textContent = "updated " + new Date().toLocaleTimeString("en-GB");
      })
      .catch(function (e) {
        var s = document.getElementById("status");
        s.className = "stale";
        // The figures stay, dimmed: they are the last ones read, not live ones.
        document.body.classList.add("stale");
        s.textContent = "no data: " + e.message + (lastOk ? " (the figures below are from " + new Date(lastOk).toLocaleTimeString("en-GB") + ")" : "");
      })
      .then(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
</script>
</body>
</html>
"""#
}
