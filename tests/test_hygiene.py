"""House rules: notebooks stripped and thin, one parameters cell, lock and conda file in step."""

from __future__ import annotations

import ast
import json

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


#: lines of code a notebook cell may have besides its imports: parameters, a call or two, a table, a figure
MAX_CELL_LINES = 6
#: statements that mean analysis logic lives in the notebook (move it into src/analysis)
LOGIC = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While, ast.With, ast.Try)


def cell_problems(source: str) -> list[str]:
    """What makes a code cell more than a thin call: too many lines besides imports, or a def /
    class / loop / with / try statement (comprehensions are fine). IPython magics are ignored."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    tree = ast.parse(code)
    problems = [f"line {node.lineno}: a {type(node).__name__} statement" for node in ast.walk(tree) if isinstance(node, LOGIC)]
    lines = set()
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            lines |= {n for n in range(node.lineno, node.end_lineno + 1) if code.splitlines()[n - 1].strip()}
    if len(lines) > MAX_CELL_LINES:
        problems.append(f"{len(lines)} lines of code besides imports (at most {MAX_CELL_LINES})")
    return problems


def test_the_cell_check_catches_logic_and_long_cells():
    """The check itself: a loop, a function and a long cell are flagged; a thin cell is not."""
    assert cell_problems("from analysis import effects\nfx = effects.estimate(inp)\nfx.simple") == []
    assert cell_problems("for x in y:\n    print(x)")[0].startswith("line 1: a For")
    assert "a FunctionDef" in cell_problems("def f():\n    return 1")[0]
    assert cell_problems("\n".join(f"a{i} = {i}" for i in range(MAX_CELL_LINES + 1)))[-1].startswith(f"{MAX_CELL_LINES + 1} lines")
    assert cell_problems("import pandas as pd\n" * 20 + "x = [i for i in range(3)]") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_keeps_no_analysis_logic(path):
    """Notebooks are thin: they import from `analysis`, and every code cell is a few lines of calls
    with no function, class, loop, with or try of its own (the logic lives in src/analysis, tested)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    assert "from analysis" in "\n".join(src for _, src in code)
    problems = {i: p for i, src in code if (p := cell_problems(src))}
    assert not problems, f"cells (by position) that hold analysis logic: {problems}"


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
    """The README gives `make all` and `make test`; CI runs `make test`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make all" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
