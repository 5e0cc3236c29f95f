#!/usr/bin/env python3
"""Checks Playhead's live page in headless Chromium (Debian chromium + chromedriver, pip selenium).

Usage: live_page_check.py BASE_URL EXPECTED_JSON SCREENSHOT_PATH

BASE_URL serves the page at "/" and its data at "/live.json"; a POST to "/advance" makes the server
move its figures to the second phase. EXPECTED_JSON is {"phase1": {element_id: text, ...},
"phase2": {...}, "top_content_phase1": [[cell, ...], ...], "top_content_phase2": [...]}.
The script waits (up to 20 s per phase) until every element shows its text, checks the top-content
table and that the sparklines drew something, saves a screenshot, and exits 0; it prints what differs
and exits 1 otherwise.
"""
import json
import os
import sys
import time
import urllib.request

os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


READ_PAGE = """
var ids = arguments[0], figures = {};
ids.forEach(function (id) { var el = document.getElementById(id); figures[id] = el ? el.textContent.trim() : null; });
var rows = [];
document.querySelectorAll("#top-content tbody tr").forEach(function (tr) {
  rows.push(Array.prototype.map.call(tr.querySelectorAll("td"), function (td) { return td.textContent.trim(); }));
});
return [figures, rows];
"""


def read_page(driver, ids):
    """The figures' texts and the top-content rows, read in one script (the page replaces rows every second)."""
    figures, rows = driver.execute_script(READ_PAGE, list(ids))
    return figures, rows


def wait_for(driver, expected, top, label, timeout=20.0):
    deadline = time.time() + timeout
    seen, rows = {}, []
    while time.time() < deadline:
        seen, rows = read_page(driver, expected.keys())
        if seen == expected and (top is None or rows == top):
            return
        time.sleep(0.1)
    diff = {k: {"expected": v, "shown": seen.get(k)} for k, v in expected.items() if seen.get(k) != v}
    print(json.dumps({"phase": label, "mismatch": diff, "top_expected": top, "top_shown": rows}, indent=1))
    print("status:", driver.find_element(By.ID, "status").text)
    for entry in driver.get_log("browser"):
        print("browser:", entry)
    sys.exit(1)


def spark_drawn(driver, canvas_id):
    return driver.execute_script(
        """
        var c = document.getElementById(arguments[0]);
        var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (var i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
        return false;
        """,
        canvas_id,
    )


def main():
    base, expected, screenshot = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    if not base.endswith("/"):
        base += "/"
    options = Options()
    options.binary_location = os.environ.get("PLAYHEAD_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("PLAYHEAD_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(base)
        if driver.title != "Playhead live":
            print("unexpected title:", driver.title)
            sys.exit(1)
        wait_for(driver, expected["phase1"], expected.get("top_content_phase1"), "phase1")
        request = urllib.request.Request(base + "advance", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                print("advance failed:", response.status)
                sys.exit(1)
        wait_for(driver, expected["phase2"], expected.get("top_content_phase2"), "phase2")
        for canvas in ("spark-events-per-second", "spark-concurrent-viewers"):
            if not spark_drawn(driver, canvas):
                print("sparkline not drawn:", canvas)
                sys.exit(1)
        status = driver.find_element(By.ID, "status")
        if "stale" in (status.get_attribute("class") or ""):
            print("page reports stale data:", status.text)
            sys.exit(1)
        # A title with a long run without spaces wraps: the page is no wider than the window.
        widths = driver.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
        if widths[0] > widths[1]:
            print("the page is wider than the window:", widths)
            sys.exit(1)
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        driver.save_screenshot(screenshot)
        # The server gone: the status says so, and the figures left on the page are dimmed.
        request = urllib.request.Request(base + "break", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                print("break failed:", response.status)
                sys.exit(1)
        deadline = time.time() + 10
        dimmed = None
        while time.time() < deadline:
            dimmed = driver.execute_script(
                "var v = document.getElementById('fig-events-per-second');"
                "return [document.body.classList.contains('stale'), parseFloat(getComputedStyle(v.parentNode).opacity),"
                " document.getElementById('status').textContent];")
            if dimmed[0] and dimmed[1] < 0.5:
                break
            time.sleep(0.2)
        else:
            print("the figures are not dimmed once live.json fails:", dimmed)
            sys.exit(1)
        print(json.dumps({"ok": True, "screenshot": screenshot, "status": status.text}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
