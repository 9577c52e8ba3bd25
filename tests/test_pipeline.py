"""End to end: the Makefile pipeline in a temporary copy of the repository, and its reports in a browser.

- `make all CONFIG=small` builds the data, runs every notebook with papermill and publishes
  reports/ with an index page linking every report, each with a provenance footer and no error cell;
- headless Chromium opens reports/index.html over HTTP, follows every link, and finds every page
  rendered with no broken image or link and no console error;
- a misspelt parameter stops `make all` with a message naming it, and after the fix the next
  `make all` re-runs only the failed step and what follows;
- every file under reports/ has the mode of a file made with open() (readable by a web server); the
  index names each outcome family with its headline; each page's footer lists the files its notebook
  read with their hashes, and a change to one family's parameter file changes only that family's
  page (and the summary, which reads every family);
- notebooks get only the parameters they declare (no papermill "unknown parameter" warnings);
- without a browser, `make test` says what to run and skips the browser test, except under CI.

The copy uses this interpreter's environment (VENV=sys.prefix) with a fresh environment stamp, so
the test never reinstalls packages.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from analysis.config import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("pipeline")]

DEFAULT_CHROMIUM = "/usr/bin/chromium"


def browser_or_skip(env: dict | None = None) -> str:
    """The browser of the browser test (``$CHROMIUM``, else Debian's); skip if missing, fail if missing under CI."""
    env = dict(os.environ) if env is None else env
    path = env.get("CHROMIUM") or DEFAULT_CHROMIUM
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    how = "apt-get install chromium" if os.geteuid() == 0 else "sudo apt-get install chromium"
    message = f"{path} is missing; to run the browser test: {how} (`make test` does it when run as root)"
    if env.get("CI") == "true":
        pytest.fail(f"{message}. CI=true, so a missing browser is a failure", pytrace=False)
    pytest.skip(message)


def _run_notebook_tool():
    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "tools" / "run_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    """index.html links each report; every page has its provenance footer and no progress-bar widget;
    no notebook has an error cell; on the synthetic world (which has every input) no report is skipped
    for lack of inputs."""
    reports = project / "reports"
    index = (reports / "index.html").read_text(encoding="utf-8")
    pages = sorted(p.stem for p in (project / "build" / "small").glob("*.ipynb") if not p.name.endswith(".failed.ipynb"))
    assert {"01_data", "02_descriptives"} <= set(pages)
    for page in pages:
        assert f'href="{page}.html"' in index
        html = (reports / f"{page}.html").read_text(encoding="utf-8")
        assert "Provenance" in html and "git commit" in html and "config/small.yaml" in html
        assert "application/vnd.jupyter.widget-view" not in html, f"{page} embeds a progress-bar widget"
        nb = json.loads((project / "build" / "small" / f"{page}.ipynb").read_text(encoding="utf-8"))
        errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{page} has error cells"
    assert list((reports / "figures").glob("*.png")) and list((reports / "tables").glob("*.tex"))
    families = sorted(p.stem.removeprefix("effects_") for p in (project / "config").glob("effects_*.yaml"))
    assert {f"effects_{f}" for f in families} | {"summary", "03_productivity"} <= set(pages)
    skipped = sorted(p.stem for p in (project / "data" / "processed" / "small" / "skipped").glob("*.json"))
    assert not skipped, f"reports skipped on the synthetic world, whose panel has every input: {skipped}"
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
    chromium = browser_or_skip()
    from playwright.sync_api import sync_playwright

    server = _serve(project / "reports")
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    try:
        with sync_playwright() as p:
            flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
            browser = p.chromium.launch(executable_path=chromium, args=flags)
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


# --- first contact: browser, file modes, parameters, index, provenance ------------------------------
# (before the broken-parameter test: after its misspelt world key, the next `make all` rebuilds everything)
def test_missing_browser_skips_the_browser_test_outside_ci_and_fails_under_ci(tmp_path):
    """With $CHROMIUM pointing at no file the browser test is skipped with a reason that says what to run;
    with CI=true the same is a failure. An existing executable is used as given."""
    missing = str(tmp_path / "no-chromium")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        browser_or_skip({"CHROMIUM": missing})
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        browser_or_skip({"CHROMIUM": missing, "CI": "true"})
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert browser_or_skip({"CHROMIUM": str(fake), "CI": "true"}) == str(fake)


def test_make_browser_says_what_to_run_and_fails_only_under_ci(project):
    """`make browser` (a prerequisite of `make test`) with a browser that is missing and cannot be installed
    (a path apt does not install) prints one line naming the command to run and succeeds, so the browser
    test is skipped; with CI=true it fails."""
    missing = "CHROMIUM=/nonexistent/chromium"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    quiet = subprocess.run(["make", "-s", "browser", missing], cwd=project, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stdout.strip().splitlines()
    assert len(lines) == 1 and "/nonexistent/chromium is missing" in lines[0] and "apt-get install chromium" in lines[0]
    ci = subprocess.run(["make", "-s", "browser", missing], cwd=project, capture_output=True, text=True, env={**env, "CI": "true"}, timeout=60, check=False)
    assert ci.returncode != 0 and "CI=true" in ci.stderr


def test_published_files_have_the_mode_of_files_made_with_open(project, tmp_path):
    """Every file under reports/ (pages, tables, figures, listings) has the mode that a file created with a
    plain open(..., "w") gets under this process's umask, which `make` inherited (0644 under umask 022)."""
    with open(tmp_path / "by_open.txt", "w") as fh:
        fh.write("x")
    expected = stat.S_IMODE(os.stat(tmp_path / "by_open.txt").st_mode)
    files = [p for p in (project / "reports").rglob("*") if p.is_file()]
    assert len(files) > 20
    wrong = {str(p.relative_to(project)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if stat.S_IMODE(p.stat().st_mode) != expected}
    assert not wrong, f"expected {oct(expected)}: {wrong}"


def test_notebooks_get_only_the_parameters_they_declare(project):
    """No papermill log warns of an unknown parameter; each notebook got exactly what its parameters cell
    declares (config, and family for the effects notebook). Naming an undeclared parameter is an error."""
    tool = _run_notebook_tool()
    logs = sorted((project / "build" / "small").glob("*.log"))
    assert len(logs) >= 7
    for log in logs:
        text = log.read_text(encoding="utf-8")
        assert "unknown parameter" not in text.lower(), log.name
        per_family = log.stem.startswith(("effects_", "robustness_"))
        family = log.stem.split("_", 1)[1] if per_family else ""
        expected = f"{{config: small, family: {family}}}" if per_family else "{config: small}"
        assert f": {expected}" in text, (log.name, text[:300])
    assert tool.declared_parameters(ROOT / "notebooks" / "04_effects.ipynb") == ["config", "family"]
    with pytest.raises(ValueError, match="'famly'"):
        tool.select_parameters(["config", "family"], {}, {"famly": "innovation"})


def _cards(index: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r'<div class="card [^"]*"><h2><a href="([^"]+)\.html">.*?</div>', index)}


def test_index_names_every_family_with_its_headline(project):
    """Each effects card is titled by its family ("Effects on innovation") and shows the main outcome's
    Callaway-Sant'Anna estimate, 95 % CI and, on the synthetic world, the truth, as saved by the effects
    notebook (results/effects_<family>/simple.parquet, the numbers of the page's headline table)."""
    import pandas as pd
    import yaml

    cards = _cards((project / "reports" / "index.html").read_text(encoding="utf-8"))
    families = sorted(p.stem.removeprefix("effects_") for p in (project / "config").glob("effects_*.yaml"))
    titles = set()
    for family in families:
        card = cards[f"effects_{family}"]
        title = re.search(r"<h2><a [^>]*>(.*?)</a>", card).group(1)
        titles.add(title)
        assert title == f"Effects on {family}"
        spec = yaml.safe_load((project / "config" / f"effects_{family}.yaml").read_text())
        simple = pd.read_parquet(project / "data" / "processed" / "small" / "results" / f"effects_{family}" / "simple.parquet")
        r = simple[(simple["outcome"] == spec["main"]) & (simple["estimator"] == "cs_dr")].iloc[0]
        expected = f"{r['estimate']:.3f} (95 % CI {r['conf_low']:.3f} to {r['conf_high']:.3f})"
        assert expected in card and f"true effect {r['truth']:.3f}" in card, (family, expected, card)
    assert len(titles) == len(families) >= 3


_FOOTER = re.compile(r'<footer class="provenance">.*?</footer>', re.S)
_INPUT = re.compile(r"<code>([^<]+)</code> \(sha256 <code>([0-9a-f]{12})</code>\)")


def _footer_inputs(page: Path) -> dict[str, str]:
    return dict(_INPUT.findall(_FOOTER.search(page.read_text(encoding="utf-8")).group(0)))


def test_footers_list_the_files_each_notebook_read(project):
    """Each page's footer lists the parameter and data files its notebook read, each with the hash of the
    file as it is (file_hash); an effects page lists its own family's file, not another family's, and
    the panel with TFP if its family reads TFP (productivity), else the built panel only (the pages make
    runs beside 03_productivity, tools/families.py); the descriptives page reads the panel and no family file."""
    from analysis.io import file_hash

    reports = project / "reports"
    families = sorted(p.stem.removeprefix("effects_") for p in (project / "config").glob("effects_*.yaml"))
    pages = {p.stem: _footer_inputs(p) for p in reports.glob("*.html") if p.name != "index.html"}
    for name, inputs in pages.items():
        assert {"config/default.yaml", "config/small.yaml"} <= set(inputs), name
        for path, digest in inputs.items():
            assert file_hash(project / path) == digest, (name, path)
    for family in families:
        inputs = set(pages[f"effects_{family}"])
        assert f"config/effects_{family}.yaml" in inputs
        panels = {p for p in inputs if p.startswith("data/processed/small/panel")}
        assert panels == {f"data/processed/small/{'panel_tfp' if family == 'productivity' else 'panel'}.parquet"}, (family, panels)
        assert not any(f"effects_{other}" in p for other in families if other != family for p in inputs)
    assert "data/processed/small/panel.parquet" in pages["02_descriptives"]
    assert not any("effects_" in p for p in pages["02_descriptives"])
    assert {f"config/effects_{f}.yaml" for f in families} <= set(pages["summary"])


def test_changing_one_family_file_changes_only_its_footers(project):
    """After a change to config/effects_innovation.yaml (a comment: same results) and `make all`, the
    innovation page's footer differs from before only in that file's hash, the summary's (which reads every
    family) only in files of the innovation family, and every other page's footer is unchanged."""
    reports = project / "reports"
    before = {p.stem: (_FOOTER.search(p.read_text(encoding="utf-8")).group(0), _footer_inputs(p)) for p in reports.glob("*.html") if p.name != "index.html"}
    spec = project / "config" / "effects_innovation.yaml"
    spec.write_text(spec.read_text() + "# edited by test_changing_one_family_file_changes_only_its_footers\n")
    _make(project, "all")
    for page in reports.glob("*.html"):
        if page.name == "index.html":
            continue
        footer, inputs = _FOOTER.search(page.read_text(encoding="utf-8")).group(0), _footer_inputs(page)
        old_footer, old_inputs = before[page.stem]
        changed = {p for p in set(inputs) | set(old_inputs) if inputs.get(p) != old_inputs.get(p)}
        if page.stem in ("effects_innovation", "robustness_innovation"):
            assert changed == {"config/effects_innovation.yaml"}
        elif page.stem == "summary":
            assert "config/effects_innovation.yaml" in changed
            assert all("effects_innovation" in p for p in changed), changed
        else:
            assert footer == old_footer, page.name


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

