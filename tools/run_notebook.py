"""Run one notebook with papermill: only the parameters it declares, and a record of what it read.

    python tools/run_notebook.py NOTEBOOK OUTPUT [-f PARAMS.yaml]... [-p NAME VALUE]... [--cwd DIR] [-k KERNEL]

The Makefile's way of executing a notebook (papermill's command line takes the same options).
Two differences from calling ``papermill`` directly:

- A parameter file (``-f``) is a whole parameter set, of which a notebook declares in its
  ``parameters`` cell only what it needs (usually just ``config``, the set's name, from which it
  loads the set itself). Papermill would inject every top-level key and warn "Passed unknown
  parameter" for each; here only the keys the notebook declares are passed (papermill's
  ``inspect_notebook`` reads the parameters cell), so a real warning in a log stands out. A
  parameter named explicitly with ``-p`` that the notebook does not declare is an error.
- The kernel logs every file it reads under ``config/`` and ``data/`` with its SHA-256 at the time
  it was read (``analysis.io.record_reads``, switched on by the environment variable
  ``ANALYSIS_READ_LOG``); the list is stored in the executed notebook's metadata
  (``metadata.analysis.inputs``), from which ``analysis.report`` writes the page's provenance.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from papermill.iorw import read_yaml_file

from analysis.io import read_log

__all__ = ["attach_inputs", "declared_parameters", "main", "published_skip", "resolve_value", "select_parameters"]


def declared_parameters(notebook: str | Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (papermill's own parser).

    Examples
    --------
    >>> declared_parameters(Path(__file__).parents[1] / "notebooks" / "04_effects.ipynb")
    ['config', 'family']
    """
    return list(papermill.inspect_notebook(str(notebook)))


def resolve_value(value: str) -> Any:
    """A ``-p`` value as papermill's command line reads it: True/False/None, int, float, else text.

    Examples
    --------
    >>> [resolve_value(v) for v in ["small", "3", "0.5", "None", "True"]]
    ['small', 3, 0.5, None, True]
    """
    special = {"True": True, "False": False, "None": None}
    if value in special:
        return special[value]
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


def select_parameters(declared: Sequence[str], from_files: Mapping[str, Any], explicit: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """The parameters to pass: declared keys of the files, overridden by the explicit ones.

    Returns the parameters and the (sorted) file keys left out because the notebook does not
    declare them.

    Raises
    ------
    ValueError
        Naming the parameter, if an explicit one is not declared by the notebook.

    Examples
    --------
    >>> select_parameters(["config", "family"], {"seed": 1, "world": {}}, {"config": "small", "family": "innovation"})
    ({'config': 'small', 'family': 'innovation'}, ['seed', 'world'])
    """
    unknown = [k for k in explicit if k not in declared]
    if unknown:
        raise ValueError(f"the notebook declares no parameter {', '.join(map(repr, unknown))} "
                         f"(its parameters cell declares: {', '.join(declared) or 'nothing'})")
    params = {k: v for k, v in from_files.items() if k in declared}
    params.update(explicit)
    return params, sorted(k for k in from_files if k not in declared)


def attach_inputs(nb: nbformat.NotebookNode, entries: Sequence[Mapping[str, str]], root: Path) -> nbformat.NotebookNode:
    """Store the files the kernel read (deduplicated, paths relative to ``root``) in ``nb.metadata.analysis.inputs``.

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook()
    >>> rows = [{"path": "/p/config/small.yaml", "sha256": "ab"}, {"path": "/p/config/small.yaml", "sha256": "ab"}]
    >>> attach_inputs(nb, rows, Path("/p")).metadata["analysis"]["inputs"]
    [{'path': 'config/small.yaml', 'sha256': 'ab'}]
    """
    seen: dict[tuple[str, str], dict] = {}
    for e in entries:
        path = Path(e["path"])
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        seen.setdefault((rel, e["sha256"]), {"path": rel, "sha256": e["sha256"]})
    nb.metadata.setdefault("analysis", {})["inputs"] = sorted(seen.values(), key=lambda r: (r["path"], r["sha256"]))
    return nb


def published_skip(nb: nbformat.NotebookNode, reason: str) -> nbformat.NotebookNode:
    """A notebook stopped by ``analysis.availability.InputsAbsent`` as a page to publish: papermill's
    error banner and the traceback removed, the cells after the stop dropped, the paragraph kept,
    and ``metadata.analysis.skipped`` set to the reason.

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook()
    >>> stop = nbformat.v4.new_code_cell("require_inputs(...)", outputs=[nbformat.v4.new_output("display_data", {"text/markdown": "Skipped"}),
    ...        nbformat.v4.new_output("error", ename="InputsAbsent", evalue="x", traceback=[])])
    >>> nb.cells = [nbformat.v4.new_markdown_cell("# Title"), stop, nbformat.v4.new_code_cell("later()")]
    >>> out = published_skip(nb, "x")
    >>> len(out.cells), [o["output_type"] for o in out.cells[1].outputs], out.metadata["analysis"]["skipped"]
    (2, ['display_data'], 'x')
    """
    cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", []) and c.get("id") != "papermill-error-cell"]
    kept = []
    for cell in cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error" and o.get("ename") == "InputsAbsent"]
        if errors:
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
            cell.get("metadata", {}).get("papermill", {}).update(exception=False, status="completed")
            kept.append(cell)
            break
        kept.append(cell)
    nb.cells = kept
    nb.metadata.setdefault("analysis", {})["skipped"] = reason
    nb.metadata.get("papermill", {}).update(exception=False)
    return nb


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); returns papermill's exit status."""
    parser = argparse.ArgumentParser(prog="tools/run_notebook.py", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("-f", "--parameters_file", action="append", default=[], help="YAML parameter file (only declared keys are passed)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--cwd", default=None, help="working folder of the kernel")
    parser.add_argument("-k", "--kernel", default="python3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    declared = declared_parameters(args.notebook)
    from_files: dict[str, Any] = {}
    for f in args.parameters_file:
        from_files.update(read_yaml_file(f) or {})
    try:
        params, dropped = select_parameters(declared, from_files, {k: resolve_value(v) for k, v in args.parameters})
    except ValueError as exc:
        print(f"error in {args.notebook}: {exc}", file=sys.stderr)
        return 2
    print(f"parameters of {args.notebook.name}: {yaml.safe_dump(params, default_flow_style=True).strip()}"
          + (f" (from the parameter files, not declared and so not passed: {', '.join(dropped)})" if dropped else ""))

    root = Path(os.environ.get("ANALYSIS_ROOT", Path(__file__).resolve().parents[1])).resolve()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fd, log = tempfile.mkstemp(prefix=f".{args.output.stem}.", suffix=".reads.jsonl", dir=args.output.parent)
    os.close(fd)
    os.environ["ANALYSIS_READ_LOG"] = log  # the kernel inherits it; analysis/__init__.py starts the log
    try:
        papermill.execute_notebook(str(args.notebook), str(args.output), parameters=params, kernel_name=args.kernel,
                                   cwd=args.cwd, log_output=True, progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        if exc.ename != "InputsAbsent":
            raise
        nbformat.write(published_skip(nbformat.read(args.output, as_version=4), exc.evalue), args.output)
        print(f"{args.notebook.name}: {exc.evalue}; published with the paragraph that says so (analysis.availability)")
    finally:
        if args.output.is_file():  # also on failure: the failed copy says what it had read
            nb = nbformat.read(args.output, as_version=4)
            nbformat.write(attach_inputs(nb, read_log(log), root), args.output)
        os.unlink(log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
