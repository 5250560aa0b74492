"""Screenshots of an audit report in a real headless browser at desktop and phone widths,
with a layout check: nothing may stick out past the right edge of the screen.

Usage::

    .venv/bin/mlsafety audit --quick --out mlsafety-report       # or any report.json
    .venv/bin/python benchmarks/report_screenshots.py [--report mlsafety-report/report.json]

The report is rendered again from its ``report.json`` with the current renderer, then opened
in Chromium (``chromium-headless-shell`` or ``chromium``; Debian: ``apt-get install
chromium-headless-shell``) at 1280 and 390 px. For each width it writes
``<out>/report-<width>.png`` (the top ``--height`` pixels of the page) and records in
``<out>/layout.json`` the page's scroll width and every table box and figure that reaches
past the viewport. It exits 1 when something does, and skips (exit 0, with a message)
when no Chromium is installed: ``tests/report/test_render.py`` then checks the CSS instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlsafety.report import CheckResult, render_html

WIDTHS = (1280, 390)
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")

# runs in the page after layout; writes its findings into the title, which --dump-dom returns
_PROBE = """<script>
window.addEventListener('load', () => {
  const width = window.innerWidth;
  const out = [];
  const check = (selector, kind) => document.querySelectorAll(selector).forEach((element, index) => {
    const box = element.getBoundingClientRect();
    if (box.right > width + 1) out.push({kind: kind, index: index, right: Math.round(box.right)});
  });
  check('.table-wrap', 'table box');
  check('figure img', 'figure');
  check('h1, h2, h3, p, dl, .warning, .next-step', 'text block');
  document.title = 'LAYOUT ' + JSON.stringify({viewport: width,
    scroll_width: document.documentElement.scrollWidth, overflowing: out,
    tables: document.querySelectorAll('table').length,
    tables_scrolling_inside: [...document.querySelectorAll('.table-wrap')]
      .filter(b => b.scrollWidth > b.clientWidth).length});
});
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, *args: str) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=Path("mlsafety-report/report.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/report_screenshots"))
    parser.add_argument("--height", type=int, default=2400, help="Pixels of the page captured from the top.")
    args = parser.parse_args()

    browser = find_browser()
    if browser is None:
        print("skipped: no Chromium found (looked for " + ", ".join(BROWSERS) + "); install one, e.g. "
              "'apt-get install chromium-headless-shell'. tests/report/test_render.py checks the CSS meanwhile.")
        return 0
    if not args.report.is_file():
        print(f"error: {args.report} not found; run 'mlsafety audit --quick' first or pass --report.", file=sys.stderr)
        return 2
    payload = json.loads(args.report.read_text())
    results = [CheckResult.from_dict(c) for c in payload["checks"]]
    html = render_html(results, payload["metadata"], payload.get("title", "mlsafety audit"))
    args.out.mkdir(parents=True, exist_ok=True)
    layout = {"report": str(args.report), "browser": Path(browser).name,
              "browser_version": _run(browser, "--version").strip() if "headless-shell" not in browser else "", }
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        probe = Path(folder) / "probe.html"
        page.write_text(html)
        probe.write_text(html.replace("</body>", _PROBE + "</body>"))
        for width in WIDTHS:
            dom = _run(browser, f"--window-size={width},{args.height}", "--virtual-time-budget=5000", "--dump-dom",
                       probe.as_uri())
            start = dom.find("LAYOUT ")
            if start < 0:
                print(f"error: the layout probe did not run at {width} px", file=sys.stderr)
                return 1
            result = json.loads(dom[start + 7:dom.index("</title>", start)].replace("&quot;", '"'))
            shot = args.out / f"report-{width}.png"
            _run(browser, f"--window-size={width},{args.height}", f"--screenshot={shot.resolve()}", page.as_uri())
            result["screenshot"] = str(shot)
            layout[str(width)] = result
            cut = result["scroll_width"] > width or result["overflowing"]
            failed |= bool(cut)
            print(f"{width:>5} px: page width {result['scroll_width']} px, {result['tables']} tables "
                  f"({result['tables_scrolling_inside']} scroll inside their box), "
                  f"{len(result['overflowing'])} element(s) past the edge -> {'CUT OFF' if cut else 'ok'}; {shot}")
    (args.out / "layout.json").write_text(json.dumps(layout, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
