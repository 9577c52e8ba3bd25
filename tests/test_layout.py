"""The house's floors (DESIGN.md, README "Modules"): a module imports only from its own floor or below.

Every module of ``src/analysis`` is read with :mod:`ast` (imports at the top and inside functions
alike); an import of a higher floor is an upward arrow and fails, naming both modules. A module
missing from :data:`FLOORS` fails too, so a new module gets its floor when it is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: floor of each module (a package stands for all its modules), bottom up
FLOORS: dict[str, int] = {
    # 1: facts, atomic writes, the one result shape
    "analysis.domain": 1,
    "analysis.io": 1,
    "analysis.results": 1,
    # 2: estimators and the data contract; they take paths and caches from their caller
    "analysis.inference": 2,
    "analysis.tfp": 2,
    "analysis.did": 2,
    "analysis.schema": 2,
    # 3: parameter sets and where many draws run (the Dask engine); the data in: the user's files and the synthetic world (which knows the project's paths)
    "analysis.config": 3,
    "analysis.engine": 3,
    "analysis.sources": 3,
    "analysis.simulate": 3,
    "analysis.example_records": 3,
    "analysis.example_firms": 3,
    # 4: the validated analysis panel from either source
    "analysis.panel": 4,
    # 5: the study's steps, figures, tables, reports
    "analysis.productivity": 5,
    "analysis.effects": 5,
    "analysis.availability": 5,
    "analysis.truth": 5,
    "analysis.robustness": 5,
    "analysis.montecarlo": 5,
    "analysis.describe": 5,
    "analysis.plots": 5,
    "analysis.tables": 5,
    "analysis.report": 5,
}
#: rules beyond floors
FORBIDDEN = {("analysis.sources", "analysis.simulate"): "the real-data readers import nothing of the simulator"}
#: known exceptions, each with the reason and when it goes
ALLOWED: dict[tuple[str, str], str] = {}


def _floor_key(module: str) -> str | None:
    parts = module.split(".")
    for i in range(len(parts), 1, -1):
        if ".".join(parts[:i]) in FLOORS:
            return ".".join(parts[:i])
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "analysis").rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("analysis.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base == "analysis":
                found |= {f"analysis.{a.name}" for a in node.names}
            elif base.startswith("analysis."):
                found.add(base)
    return found


def upward_arrows(floors: dict[str, int]) -> list[str]:
    """Imports of a higher floor (and forbidden ones) among the package's modules."""
    problems = []
    for module, path in _modules().items():
        if module == "analysis":  # the package's __init__ (read log switch) sits outside the floors
            continue
        own = _floor_key(module)
        if own is None:
            problems.append(f"{module} has no floor: add it to FLOORS in tests/test_layout.py")
            continue
        for target in sorted(_imports(path, module)):
            key = _floor_key(target)
            if key is None or key == own or (own, key) in ALLOWED:
                continue
            if (own, key) in FORBIDDEN:
                problems.append(f"{module} imports {target}: {FORBIDDEN[(own, key)]}")
            elif floors[key] > floors[own]:
                problems.append(f"{module} (floor {floors[own]}) imports {target} (floor {floors[key]})")
    return problems


def test_no_module_imports_a_higher_floor():
    """The data flow runs one way: estimators, results and the contract know nothing of the project's
    paths, the simulator, the panel builder, plots or reports."""
    assert upward_arrows(FLOORS) == []


def test_the_check_sees_an_upward_arrow():
    """The check itself: with ``analysis.effects`` put on floor 1, its imports of the estimators are flagged."""
    problems = upward_arrows({**FLOORS, "analysis.effects": 1})
    assert any(p.startswith("analysis.effects (floor 1) imports analysis.did") for p in problems)


@pytest.mark.parametrize("module", ["analysis.tfp", "analysis.did", "analysis.results"])
def test_estimators_and_results_import_no_project_layer(module):
    """tfp/, did/ and results import nothing of config, simulate, panel, plots or report (the issue's list)."""
    banned = {"analysis.config", "analysis.simulate", "analysis.panel", "analysis.plots", "analysis.report"}
    hits = []
    for name, path in _modules().items():
        if _floor_key(name) == module:
            hits += [f"{name} imports {t}" for t in _imports(path, name) if _floor_key(t) in banned and (module, _floor_key(t)) not in ALLOWED]
    assert hits == []
