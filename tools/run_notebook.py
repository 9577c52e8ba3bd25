"""Run one notebook with papermill: only the parameters it declares, and a record of what it read.

    python tools/run_notebook.py NOTEBOOK OUTPUT [-f PARAMS.yaml]... [-p NAME VALUE]... [--cwd DIR] [-k KERNEL] [--stats FILE]

The Makefile's way of executing a notebook (papermill's command line takes the same options).
Differences from calling ``papermill`` directly:

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
- A watch thread follows the kernel: its memory (resident, and its peak ``VmHWM``), which cell it
  runs, and the loops it reports (``analysis.io.progress`` writes them to the file named by
  ``ANALYSIS_PROGRESS``). Once a minute it prints one line, so a long step shows in the build
  log that it is alive (the published report has no progress bars: the Makefile sets
  ``TQDM_DISABLE=1``). ``--stats`` writes the run's time and the kernel's peak memory as JSON.
- On Linux and macOS the kernel talks to papermill over Unix sockets in a folder of its own
  (ZeroMQ's ``ipc`` transport), not over TCP ports of localhost: with TCP, the ports jupyter_client
  picks are free when it picks them but may be taken by another kernel starting at the same moment
  before this one binds them, and the kernel dies with "ZMQError: Address already in use"
  (papermill issue #511; it happened here with two ``make all`` running at once).
- If the kernel dies (the system killed it, usually for lack of memory) or a cell raises
  ``MemoryError``, the last lines say which notebook and cell, how much memory the kernel had
  reached, and which parameters lower it (the notebook's ``metadata.analysis.memory_parameters``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from papermill.iorw import read_yaml_file

from analysis.io import PROGRESS_ENV, read_log, read_progress, write_text

__all__ = [
    "attach_inputs", "declared_parameters", "main", "published_skip", "resolve_value", "select_parameters", "KernelWatch", "death_message",
    "describe_loops", "duration", "kernel_transport",
]


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


def duration(seconds: float) -> str:
    """Seconds as ``1 h 02 min``, ``3 min 05 s`` or ``42 s``.

    Examples
    --------
    >>> duration(42.4), duration(185), duration(3725)
    ('42 s', '3 min 05 s', '1 h 02 min')
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def describe_loops(loops: Sequence[Mapping[str, Any]], now: float | None = None) -> str:
    """The running loops (``analysis.io.progress``) in words, innermost last, with a time-left estimate.

    Examples
    --------
    >>> describe_loops([{"desc": "acf bootstrap", "n": 10, "total": 50, "started": 0.0, "postfix": ""}], now=100.0)
    'acf bootstrap 10/50 (1 min 40 s, about 6 min 40 s left)'
    """
    now = time.time() if now is None else now
    parts = []
    for lp in loops:
        n, total, elapsed = lp.get("n", 0), lp.get("total"), max(now - lp.get("started", now), 0.0)
        text = f"{lp.get('desc', 'loop')} {n:g}" + (f"/{total:g}" if total else "")
        extra = duration(elapsed)
        if total and n > 0:
            extra += f", about {duration(elapsed / n * (total - n))} left"
        text += f" ({extra})"
        if lp.get("postfix"):
            text += f" [{lp['postfix']}]"
        parts.append(text)
    return "; ".join(parts)


def _gb(n_bytes: float) -> float:
    return n_bytes / 1e9


class KernelWatch(threading.Thread):
    """Follow the kernel this process started: memory, running cell, reported loops; a line a minute.

    The kernel is every process below this one (papermill's kernel and what it starts, e.g. Dask
    workers): ``rss`` is their summed resident memory, ``peak`` the highest of that sum over the
    polls and of each process's own ``VmHWM`` (which catches spikes between polls).
    """

    def __init__(self, name: str, cells: Sequence[str], progress_file: str | None, *, interval: float = 0.5, heartbeat: float = 60.0,
                 out=None):
        super().__init__(daemon=True)
        self.name, self.cells, self.progress_file = name, list(cells), progress_file
        self.injected_after: int | None = None
        self.interval, self.heartbeat = interval, heartbeat
        self.out = out or sys.stdout
        self.rss = self.peak = 0.0
        self.cell: int | None = None
        self.started = time.time()
        self._stop = threading.Event()
        try:
            import psutil

            self._proc = psutil.Process()
            self.total_gb = _gb(psutil.virtual_memory().total)
            self.available_gb = _gb(psutil.virtual_memory().available)
        except ImportError:  # pragma: no cover - psutil comes with ipykernel
            self._proc, self.total_gb, self.available_gb = None, float("nan"), float("nan")

    # papermill logs "Executing Cell N---" as each cell starts
    def handler(self) -> logging.Handler:
        """A logging handler for papermill's logger that keeps the number of the running cell."""
        watch = self

        class _Cells(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                m = re.match(r"Executing Cell (\d+)", str(record.getMessage()))
                if m:
                    watch.cell = int(m.group(1))

        return _Cells(level=logging.INFO)

    def sample(self) -> None:
        """Poll the kernel's processes once."""
        if self._proc is None:
            return
        import psutil

        rss = 0.0
        for child in self._proc.children(recursive=True):
            try:
                rss += child.memory_info().rss
                hwm = _vm_hwm(child.pid)
                if hwm is not None:
                    self.peak = max(self.peak, hwm)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.rss = _gb(rss)
        self.peak = max(self.peak, self.rss)

    def cell_text(self) -> str:
        """``cell 3 of 10 (`first line of its code`)``, or ``''`` before the first cell.

        Cells are numbered as in the notebook the user opens: papermill's count includes the
        cell of injected parameters it adds after the ``parameters`` cell (``injected_after``).
        """
        if self.cell is None:
            return ""
        k = self.cell
        if self.injected_after is not None and k > self.injected_after:
            if k == self.injected_after + 1:
                return "the injected parameters"
            k -= 1
        src = self.cells[k - 1] if 0 < k <= len(self.cells) else ""
        first = next((ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
        first = first if len(first) <= 90 else first[:87] + "..."
        return f"cell {k} of {len(self.cells)}" + (f" (`{first}`)" if first else "")

    def line(self) -> str:
        """The heartbeat line: elapsed time, cell, memory, running loops."""
        loops = describe_loops(read_progress(self.progress_file)) if self.progress_file else ""
        text = f"[{self.name}] running {duration(time.time() - self.started)}"
        if self.cell is not None:
            text += f", {self.cell_text()}"
        text += f"; kernel memory {self.rss:.1f} GB (peak {self.peak:.1f} GB)"
        return text + (f"; {loops}" if loops else "")

    def run(self) -> None:
        """Poll every ``interval`` seconds; print :meth:`line` every ``heartbeat`` seconds."""
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            self.sample()
            if time.monotonic() - last >= self.heartbeat:
                last = time.monotonic()
                print(self.line(), file=self.out, flush=True)

    def stop(self) -> None:
        """Stop the thread (after one last sample)."""
        self.sample()
        self._stop.set()


def _vm_hwm(pid: int) -> float | None:
    """Peak resident memory (GB) of a process, from ``/proc/<pid>/status`` (Linux), else ``None``."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for ln in fh:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1]) * 1e3 / 1e9
    except OSError:
        return None
    return None


def death_message(notebook: str, watch: KernelWatch, *, config: str, hints: Sequence[str], memory_error: bool = False) -> str:
    """What to tell the user when the kernel died or ran out of memory: where, how much, what to lower.

    Examples
    --------
    >>> w = KernelWatch("03_productivity", ["x = 1", "fit = estimate(panel)"], None)
    >>> w.cell, w.peak, w.total_gb, w.available_gb, w.started = 2, 23.1, 24.0, 19.5, time.time() - 600
    >>> print(death_message("03_productivity.ipynb", w, config="asif", hints=["tfp.n_boot (bootstrap draws)"]))  # doctest: +NORMALIZE_WHITESPACE
    error: 03_productivity.ipynb stopped: the kernel died (killed, most likely by the system for lack of memory)
    in cell 2 of 2 (`fit = estimate(panel)`) after 10 min 00 s.
    Its memory had reached 23.1 GB; this machine has 24.0 GB (19.5 GB were available when the step started).
    To make it fit, lower in config/asif.yaml: tfp.n_boot (bootstrap draws); or use a machine with more memory (README, "Will my real data fit?").
    """
    what = "ran out of memory (MemoryError)" if memory_error else "the kernel died (killed, most likely by the system for lack of memory)"
    where = f" in {watch.cell_text()}" if watch.cell is not None else ""
    lower = "; ".join(hints) if hints else "the parameters of this step"
    return (
        f"error: {notebook} stopped: {what}{where} after {duration(time.time() - watch.started)}.\n"
        f"Its memory had reached {watch.peak:.1f} GB; this machine has {watch.total_gb:.1f} GB "
        f"({watch.available_gb:.1f} GB were available when the step started).\n"
        f"To make it fit, lower in config/{config}.yaml: {lower}; or use a machine with more memory (README, \"Will my real data fit?\")."
    )


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


def kernel_transport(folder: str | Path) -> dict[str, Any]:
    """Papermill arguments that put the kernel's sockets in ``folder`` (ZeroMQ ``ipc``) where the
    system has Unix sockets, else none (TCP on localhost, jupyter_client's default).

    >>> cfg = kernel_transport("/tmp/k")["config"] if os.name == "posix" else None
    >>> os.name != "posix" or (cfg.KernelManager.transport, cfg.KernelManager.ip) == ("ipc", "/tmp/k/kernel")
    True
    """
    if os.name != "posix":
        return {}
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"transport": "ipc", "ip": str(Path(folder) / "kernel")}})}


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); returns papermill's exit status."""
    parser = argparse.ArgumentParser(prog="tools/run_notebook.py", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("-f", "--parameters_file", action="append", default=[], help="YAML parameter file (only declared keys are passed)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--cwd", default=None, help="working folder of the kernel")
    parser.add_argument("-k", "--kernel", default="python3")
    parser.add_argument("--stats", type=Path, default=None, help="write the run's time and the kernel's peak memory here (JSON)")
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
    progress_file = f"{log.removesuffix('.reads.jsonl')}.progress.json"
    os.environ[PROGRESS_ENV] = progress_file  # analysis.io.progress reports the kernel's loops there

    source = nbformat.read(args.notebook, as_version=4)
    cells = [c.source for c in source.cells]
    hints = list(source.metadata.get("analysis", {}).get("memory_parameters", []))
    name = args.notebook.stem if "family" not in params else f"{args.notebook.stem} ({params['family']})"
    # ANALYSIS_HEARTBEAT: seconds between the log's heartbeat lines (default a minute; the tests use less)
    watch = KernelWatch(name, cells, progress_file, heartbeat=float(os.environ.get("ANALYSIS_HEARTBEAT", 60)))
    tagged = [i for i, c in enumerate(source.cells, start=1) if "parameters" in c.metadata.get("tags", [])]
    watch.injected_after = tagged[0] if (tagged and params) else None
    handler = watch.handler()
    logging.getLogger("papermill").addHandler(handler)
    watch.start()
    status, message = "ok", None
    sockets = tempfile.TemporaryDirectory(prefix="kernel-")  # short: a Unix socket's path has at most 107 bytes
    try:
        papermill.execute_notebook(str(args.notebook), str(args.output), parameters=params, kernel_name=args.kernel,
                                   cwd=args.cwd, log_output=True, progress_bar=False, **kernel_transport(sockets.name))
    except Exception as exc:
        import nbclient.exceptions

        if isinstance(exc, papermill.PapermillExecutionError) and exc.ename == "InputsAbsent":
            status = "skipped"
            nbformat.write(published_skip(nbformat.read(args.output, as_version=4), exc.evalue), args.output)
            print(f"{args.notebook.name}: {exc.evalue}; published with the paragraph that says so (analysis.availability)")
        else:
            status = "failed"
            dead = isinstance(exc, nbclient.exceptions.DeadKernelError)
            memory = getattr(exc, "ename", "") == "MemoryError"
            if not (dead or memory):
                raise
            status = "out of memory" if memory else "kernel died"
            logging.getLogger("papermill").exception("the notebook failed")
            message = death_message(args.notebook.name, watch, config=str(params.get("config", "default")), hints=hints, memory_error=memory)
    finally:
        watch.stop()
        sockets.cleanup()
        logging.getLogger("papermill").removeHandler(handler)
        if args.output.is_file():  # also on failure: the failed copy says what it had read
            nb = nbformat.read(args.output, as_version=4)
            nbformat.write(attach_inputs(nb, read_log(log), root), args.output)
        os.unlink(log)
        if os.path.exists(progress_file):
            os.unlink(progress_file)
        seconds = time.time() - watch.started
        if args.stats is not None:
            write_text(json.dumps({"notebook": args.notebook.name, "status": status, "seconds": round(seconds, 1),
                                   "peak_gb": round(watch.peak, 3), "machine_gb": round(watch.total_gb, 1)}) + "\n", args.stats)
        print(f"[{name}] {status} after {duration(seconds)}; the kernel's memory peaked at {watch.peak:.1f} GB", flush=True)
    if message is not None:
        print(message, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
