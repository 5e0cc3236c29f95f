#!/usr/bin/env python3
"""Sends events to Playhead from a web page in headless Chromium, the way a browser SDK does.

Usage: browser_ingest_check.py PAGE_PORT INGEST_BASE_URL WRITE_KEY

The script serves a page at http://127.0.0.1:PAGE_PORT/ (the origin the server must allow with
`--cors-origin`), and the same page at http://localhost:PAGE_PORT/ (another origin, which the
server must refuse). On the allowed origin the page sends, cross-origin to INGEST_BASE_URL:

- `fetch` of a JSON event with `Authorization: Bearer` and credentials (a preflighted request),
- `fetch` of two NDJSON events,
- `fetch` of a gzip body (CompressionStream; `Content-Encoding` needs a preflight too),
- `fetch` of a valid and an invalid event, reading the per-event error from the answer,
- `navigator.sendBeacon` with a `text/plain` body and the write key in the query,
- a preflighted `fetch` to `//v1/events` (a base URL with a trailing slash), which must see the 404.

On the other origin it sends one `fetch`, which the browser must block, and a `no-cors` `fetch` and
a `sendBeacon` of `text/plain`, which need no preflight: the browser sends them, and the server must
refuse them by their `Origin` (before 2026-12-04 it stored them). The browser enforces CORS:
an answer whose CORS headers it does not accept (a missing, wrong or repeated
`Access-Control-Allow-Origin`, for example) makes `fetch` fail. The script prints one JSON object
with what each step saw and the `event_id`s the server should have stored (`stored`) or must not
have (`not_stored`), and exits 0 when every step in the browser went as expected, 1 otherwise.
"""
import http.server
import json
import os
import sys
import threading
import time
import uuid

os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>SDK</title></head><body>
<script>
const config = CONFIG;
window.results = null;
function event(id, changes) {
  const e = {schema_version: "1.0", event_id: id, event_type: "play", timestamp: new Date().toISOString(),
    user_id: "user_1", device_id: "browser_1", session_id: "s_" + id, ip_address: "203.0.113.7", content_id: "media_1",
    content_type: "movie", title: "Big Buck Bunny", genre: ["animation"], duration_seconds: 596,
    language: "en", current_timestamp: 1.5, event_source: "web_app"};
  return Object.assign(e, changes || {});
}
async function post(body, headers, path) {
  try {
    const response = await fetch(config.ingest + (path || "/v1/events"), {method: "POST", body: body, credentials: "include",
      headers: Object.assign({"Authorization": "Bearer " + config.key}, headers)});
    let json = null;
    try { json = await response.json(); } catch (e) {}
    return {status: response.status, body: json};
  } catch (e) {
    return {error: String(e)};
  }
}
async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
async function run() {
  const r = {origin: location.origin};
  if (config.allowed) {
    r.json = await post(JSON.stringify(event(config.ids.json)), {"Content-Type": "application/json"});
    r.ndjson = await post(config.ids.ndjson.map(id => JSON.stringify(event(id))).join("\\n"),
      {"Content-Type": "application/x-ndjson"});
    r.gzip = await post(await gzip(JSON.stringify(event(config.ids.gzip))),
      {"Content-Type": "application/json", "Content-Encoding": "gzip"});
    r.partial = await post(JSON.stringify([event(config.ids.partial), event(config.ids.invalid, {event_type: "rewind"})]),
      {"Content-Type": "application/json"});
    // A page cannot know its public address: it sends "" and the server fills it in (--fill-ip-address).
    const beacon = new Blob([JSON.stringify(event(config.ids.beacon, {ip_address: ""}))], {type: "text/plain"});
    r.beacon = navigator.sendBeacon(config.ingest + "/v1/events?write_key=" + encodeURIComponent(config.key), beacon);
    // A base URL with a trailing slash: the preflighted fetch must see the 404, not a CORS error.
    r.typo = await post(JSON.stringify(event(config.ids.typo)), {"Content-Type": "application/json"}, "//v1/events");
  } else {
    r.refused = await post(JSON.stringify(event(config.ids.refused)), {"Content-Type": "application/json"});
    const other = new Blob([JSON.stringify(event(config.ids.beacon_other))], {type: "text/plain"});
    r.beacon_other = navigator.sendBeacon(config.ingest + "/v1/events?write_key=" + encodeURIComponent(config.key), other);
    try {
      // Opaque answer; the promise settles once the server has answered.
      await fetch(config.ingest + "/v1/events?write_key=" + encodeURIComponent(config.key),
        {method: "POST", mode: "no-cors", body: JSON.stringify(event(config.ids.nocors_other)), headers: {"Content-Type": "text/plain"}});
      r.nocors_other = "sent";
    } catch (e) {
      r.nocors_other = String(e);
    }
  }
  window.results = r;
}
run();
</script></body></html>
"""


def page_handler(ingest, key, ids):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            host = self.headers.get("Host", "")
            config = {"ingest": ingest, "key": key, "ids": ids, "allowed": host.startswith("127.0.0.1:")}
            body = PAGE.replace("CONFIG", json.dumps(config)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def results(driver, url, timeout=30.0):
    driver.get(url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = driver.execute_script("return window.results;")
        if found is not None:
            return found
        time.sleep(0.1)
    return {"timeout": url, "browser_log": [str(entry) for entry in driver.get_log("browser")]}


def accepted(step, count):
    body = step.get("body") or {}
    return step.get("status") == 202 and body.get("accepted") == count and body.get("rejected") == 0


def check(allowed, refused, ids):
    problems = []
    for name, count in (("json", 1), ("ndjson", 2), ("gzip", 1)):
        if not accepted(allowed.get(name, {}), count):
            problems.append(f"{name}: expected 202 with {count} accepted, saw {allowed.get(name)}")
    partial = allowed.get("partial", {})
    errors = (partial.get("body") or {}).get("errors") or []
    if partial.get("status") != 202 or (partial.get("body") or {}).get("accepted") != 1 or len(errors) != 1 \
            or errors[0].get("event_id") != ids["invalid"] or errors[0].get("field") != "event_type" or errors[0].get("index") != 1:
        problems.append(f"partial: expected 202 with one accepted and an event_type error for index 1, saw {partial}")
    typo = allowed.get("typo", {})
    if typo.get("status") != 404 or (typo.get("body") or {}).get("error") != "not_found":
        problems.append(f"typo: a preflighted fetch to //v1/events should see 404 not_found, saw {typo}")
    if allowed.get("beacon") is not True:
        problems.append(f"beacon: sendBeacon did not queue the request: {allowed.get('beacon')}")
    if "error" not in refused.get("refused", {}):
        problems.append(f"refused: the other origin's fetch should have been blocked, saw {refused.get('refused')}")
    if refused.get("nocors_other") != "sent":
        problems.append(f"nocors_other: the other origin's no-cors fetch was not sent: {refused.get('nocors_other')}")
    return problems


def main():
    page_port, ingest, key = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
    ids = {name: f"browser-{name}-{uuid.uuid4()}" for name in ("json", "gzip", "partial", "invalid", "beacon", "refused", "beacon_other", "nocors_other", "typo")}
    ids["ndjson"] = [f"browser-ndjson-{i}-{uuid.uuid4()}" for i in range(2)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), page_handler(ingest, key, ids))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = Options()
    options.binary_location = os.environ.get("PLAYHEAD_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("PLAYHEAD_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        allowed = results(driver, f"http://127.0.0.1:{page_port}/")
        refused = results(driver, f"http://localhost:{page_port}/")
        browser_log = [entry.get("message") for entry in driver.get_log("browser")]
    finally:
        driver.quit()
        server.shutdown()
    problems = check(allowed, refused, ids)
    stored = [ids["json"], *ids["ndjson"], ids["gzip"], ids["partial"], ids["beacon"]]
    print(json.dumps({"ok": not problems, "problems": problems, "allowed": allowed, "refused": refused,
                      "stored": stored, "beacon_id": ids["beacon"], "not_stored": [ids["invalid"], ids["refused"], ids["beacon_other"], ids["nocors_other"], ids["typo"]], "browser_log": browser_log}))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
