"""Render a run's report.html in headless Chromium and save a full-page screenshot, for review.

    python -m tests.screenshot_report runs/deu-20260101-120000 --out /tmp/report.png

Prints the number of images, any broken ones, requests to anything but the page itself and
console errors; exits 1 if there are broken images or outside requests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.browser import Browser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="A run directory with report.html.")
    parser.add_argument("--out", type=Path, default=Path("report-screenshot.png"))
    parser.add_argument("--width", type=int, default=1200, help="Viewport width in CSS px.")
    args = parser.parse_args(argv)
    html = args.run_dir / "report.html"
    if not html.exists():
        print(f"no {html}: run `research report {args.run_dir}` first", file=sys.stderr)
        return 2
    with Browser(width=args.width) as browser:
        page = browser.load(html)
        browser.screenshot(args.out)
    outside = [u for u in page.requests if u != html.resolve().as_uri()]
    outside = [u for u in outside if not u.startswith("data:")]
    print(f"{args.out}: {page.height}px tall, {len(page.images)} images")
    for i in page.broken_images:
        print(f"broken image: {i}")
    for u in outside:
        print(f"outside request: {u}")
    for e in page.errors:
        print(f"console error: {e}")
    return 1 if page.broken_images or outside else 0


if __name__ == "__main__":
    sys.exit(main())
