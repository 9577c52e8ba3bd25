"""End to end: the Makefile pipeline in a temporary copy of the repository, and its reports in a browser.

- `make all CONFIG=small` builds the data, runs every notebook with papermill and publishes
  reports/ with an index page linking every report, each with a provenance footer and no error cell;
- headless Chromium opens reports/index.html over HTTP, follows every link, and finds every page
  rendered with no broken image or link and no console error;
- a misspelt parameter stops `make all` with a message naming it, and after the fix the next
  `make all` re-runs only the failed step and what follows.

The copy uses this interpreter's environment (VENV=sys.prefix) with a fresh environment stamp, so
the test never reinstalls packages.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from analysis.config import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("pipeline")]

CHROMIUM = "/usr/bin/chromium"


def _project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def _make(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    stamp = project / "build" / ".env-stamp"
    cmd = ["make", *args, "CONFIG=small", f"VENV={sys.prefix}", f"ENV_STAMP={stamp}"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the repository's files with `make all CONFIG=small` run in it."""
    dest = tmp_path_factory.mktemp("e2e") / "project"
    for rel in _project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    (dest / "build").mkdir(exist_ok=True)
    (dest / "build" / ".env-stamp").touch()
    _make(dest, "all")
    return dest


def test_make_all_publishes_every_report(project):
    """index.html links each report; every page has its provenance footer; no notebook has an error cell."""
    reports = project / "reports"
    index = (reports / "index.html").read_text(encoding="utf-8")
    pages = sorted(p.stem for p in (project / "build" / "small").glob("*.ipynb") if not p.name.endswith(".failed.ipynb"))
    assert {"01_data", "02_descriptives"} <= set(pages)
    for page in pages:
        assert f'href="{page}.html"' in index
        html = (reports / f"{page}.html").read_text(encoding="utf-8")
        assert "Provenance" in html and "git commit" in html and "config/small.yaml" in html
        nb = json.loads((project / "build" / "small" / f"{page}.ipynb").read_text(encoding="utf-8"))
        errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{page} has error cells"
    assert list((reports / "figures").glob("*.png")) and list((reports / "tables").glob("*.tex"))
    families = sorted(p.stem.removeprefix("effects_") for p in (project / "config").glob("effects_*.yaml"))
    assert {f"effects_{f}" for f in families} | {"summary", "03_productivity"} <= set(pages)
    assert _make(project, "all").stdout.strip() == "", "a second make all must have nothing to do"


def test_summary_numbers_equal_the_family_tables(project):
    """Every cell of the summary table equals the same estimate (and s.e.) in its family's headline table."""
    import pandas as pd

    tables = project / "reports" / "tables"
    summary = pd.read_csv(tables / "summary_all_effects.csv", index_col=0, dtype=str).fillna("")
    checked = 0
    for path in sorted(tables.glob("effects_*_headline.csv")):
        head = pd.read_csv(path, index_col=0, dtype=str).fillna("")
        for est in [i for i in head.index if not i.endswith("(s.e.)") and i != "Observations"]:
            for outcome in head.columns:
                assert head.loc[est, outcome] == summary.loc[outcome, est], (path.name, est, outcome)
                assert head.loc[f"{est} (s.e.)", outcome] == summary.loc[f"{outcome} (s.e.)", est]
                checked += 1
    assert checked >= 3 * 6


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.browser
def test_reports_render_in_chromium(project):
    """Every page reachable from index.html loads with HTTP 200, no console error, no broken image or anchor."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does it) to run the browser test")
    from playwright.sync_api import sync_playwright

    server = _serve(project / "reports")
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type} on {page.url}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error on {page.url}: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed on {page.url}: {r.url}"))
            todo, seen = [base + "index.html"], set()
            while todo:
                url = todo.pop()
                if url in seen:
                    continue
                seen.add(url)
                response = page.goto(url, wait_until="load")
                if response is None or response.status != 200:
                    problems.append(f"{url}: HTTP {response.status if response else 'no response'}")
                    continue
                if not url.endswith(".html"):
                    continue
                broken = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 60))")
                problems += [f"broken image on {url}: {b}" for b in broken]
                for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))"):
                    if href.startswith("#"):
                        if not page.evaluate("id => document.getElementById(id) !== null", urllib.parse.unquote(href[1:])):
                            problems.append(f"anchor {href} on {url} has no target")
                        continue
                    target = urllib.parse.urljoin(url, href).split("#")[0]
                    if target.startswith(base):
                        todo.append(target)
            browser.close()
    finally:
        server.shutdown()
    assert len(seen) >= 4
    assert not problems, "\n".join(problems)


def test_broken_parameter_stops_make_and_the_fix_reruns_only_what_follows(project):
    """A misspelt column in the descriptives parameters fails 02 with a clear message; after the fix only
    02 (and the pages after it) re-run, the panel and 01 are untouched. A misspelt world key fails first."""
    config = project / "config" / "small.yaml"
    good = config.read_text()
    panel = project / "data" / "processed" / "small" / "panel.parquet"
    nb01 = project / "build" / "small" / "01_data.ipynb"
    before = (panel.stat().st_mtime_ns, nb01.stat().st_mtime_ns)

    config.write_text(good + "descriptives:\n  trends: [log_valueadded]\n")
    failed = _make(project, "all", check=False)
    assert failed.returncode != 0
    assert "log_valueadded" in failed.stderr and "is not in the panel" in failed.stderr
    assert (project / "build" / "small" / "02_descriptives.failed.ipynb").is_file()
    assert not (project / "build" / "small" / "02_descriptives.ipynb").exists()

    config.write_text(good)
    fixed = _make(project, "all")
    assert "02_descriptives" in fixed.stdout and "01_data.ipynb" not in fixed.stdout
    assert (panel.stat().st_mtime_ns, nb01.stat().st_mtime_ns) == before
    assert not (project / "build" / "small" / "02_descriptives.failed.ipynb").exists()

    config.write_text(good.replace("n_firms:", "n_firm:"))
    typo = _make(project, "all", check=False)
    assert typo.returncode != 0 and "unknown parameter 'world.n_firm'" in typo.stderr
    config.write_text(good)
