"""House rules: notebooks stripped and thin, one parameters cell, lock and conda file in step."""

from __future__ import annotations

import json
import re

import pytest

from analysis.config import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_parameterised(path):
    """No outputs or execution counts committed; exactly one cell tagged `parameters` (papermill)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert not [c for c in code if c.get("outputs") or c.get("execution_count")], "strip outputs before committing"
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_keeps_no_analysis_logic(path):
    """Notebooks import from `analysis` and define no functions or classes of their own."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "from analysis" in source
    assert not re.search(r"^\s*(def|class)\s", source, re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_title_and_summary(path):
    """The first cell is markdown with a '# Title' and a one-line summary (used by the index page)."""
    first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
    lines = [ln for ln in "".join(first["source"]).splitlines() if ln.strip()]
    assert first["cell_type"] == "markdown" and lines[0].startswith("# ") and len(lines) >= 2


def test_environment_yml_pins_equal_the_lock():
    """environment.yml (conda) pins exactly what requirements.lock pins (tools/write_environment.py)."""
    lock = {ln.strip() for ln in (ROOT / "requirements.lock").read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    env = {ln.strip()[2:] for ln in (ROOT / "environment.yml").read_text().splitlines() if ln.strip().startswith("- ") and "==" in ln}
    assert lock == env
    assert all("==" in pin for pin in lock)


def test_readme_has_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make all" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
