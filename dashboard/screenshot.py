"""Capture every dashboard page of a running dashboard with headless Chromium.

    python -m dashboard.screenshot http://127.0.0.1:8501 OUT_DIR

Uses Debian's Chromium through Playwright (no browser download); waits for
each page's charts before the screenshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {  # url path -> (text that must show, charts expected)
    "overview": ("runs in the last hour", 0),
    "scenario": ("Distribution per commit", 2),
    "regressions": ("Regressions and improvements", 0),
    "experiments": ("Experiments (A/B)", 0),
    "calibration": ("Detector calibration", 0),
    "dead-letters": ("Dead letters and refused commands", 0),
}


def capture(base_url: str, out: Path, timeout_ms: int = 60_000) -> dict[str, str]:
    """Screenshot each page; returns page -> its visible text."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    texts = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path, (text, charts) in PAGES.items():
            # the default page lives at the root
            page.goto(f"{base_url}/{'' if path == 'overview' else path}", timeout=timeout_ms)
            page.get_by_text(text).first.wait_for(timeout=timeout_ms)
            if charts:
                page.wait_for_function(
                    f"document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length"
                    f" >= {charts}", timeout=timeout_ms)
            # the script has finished when Streamlit's running indicator is gone
            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached",
                                   timeout=timeout_ms)
            page.wait_for_timeout(1500)  # let the last chart finish drawing
            page.screenshot(path=str(out / f"{path}.png"), full_page=True)
            texts[path] = page.inner_text("body")
        browser.close()
    return texts


if __name__ == "__main__":
    for name, body in capture(sys.argv[1], Path(sys.argv[2])).items():
        print(name, len(body))
