"""Which source files each notebook depends on, as Makefile rules (standard library only).

A build step, not part of the analysis package: the Makefile includes the output of
``python3 tools/deps.py`` so that changing one module re-runs only the notebooks that import it,
directly or through other modules of ``analysis``.
It reads the notebooks' code cells and the modules' imports with :mod:`ast`; nothing is
imported or run, so it works before the virtual environment exists.

Usage::

    python3 tools/deps.py NOTEBOOK [NOTEBOOK ...] > build/deps.mk
    python3 tools/deps.py --modules analysis.panel     # files a module depends on

prints, for notebook ``notebooks/03_productivity.ipynb``, a line
``NB_DEPS_03_productivity := src/analysis/tfp.py src/analysis/results.py ...``.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

PACKAGE = "analysis"


def _module_file(src: Path, dotted: str) -> Path | None:
    """File of a dotted module name under ``src`` (package ``__init__`` or plain module)."""
    base = src.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(code: str, current: str | None = None) -> set[str]:
    """Dotted names of ``analysis`` modules imported by ``code`` (absolute or relative)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level and current:
                parts = current.split(".")[: -node.level] if current else []
                mod = ".".join([*parts, mod] if mod else parts)
            if mod.split(".")[0] != PACKAGE:
                continue
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from analysis import tfp`
    return found


def module_closure(src: Path, roots: set[str]) -> set[Path]:
    """All files of the modules in ``roots`` and of what they import, transitively."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(src, name)
        if path is None:
            continue
        files.add(path)
        parts = name.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parts[:i]))
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        todo.extend(_imports(path.read_text(encoding="utf-8"), current=package + ".__init__" if path.name == "__init__.py" else name))
    return files


def notebook_imports(path: Path) -> set[str]:
    """``analysis`` modules imported by a notebook's code cells."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            found |= _imports("".join(source) if isinstance(source, list) else source)
    return found


def main(argv: list[str]) -> int:
    """Print the dependency lines (see the module docstring); run from the project root."""
    root = Path.cwd()
    src = root / "src"
    if argv[:1] == ["--modules"]:  # files of the given modules and their imports, one line
        print(" ".join(sorted(str(f.relative_to(root)) for f in module_closure(src, set(argv[1:])))))
        return 0
    for nb in argv:
        path = Path(nb)
        files = sorted(str(f.relative_to(root)) for f in module_closure(src, notebook_imports(path)))
        print(f"NB_DEPS_{path.stem} := {' '.join(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
