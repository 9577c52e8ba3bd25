"""Atomic writes and tolerant reads.

Every file the pipeline writes goes through :func:`atomic_write`: the content is written to a
temporary file in the same folder and renamed into place only when complete, so a failed step
never leaves a half-written file that ``make`` would take as up to date, and the file ends with
the mode a plain ``open(path, "w")`` gives under the user's umask (0644 under umask 022), so a
published ``reports/`` folder is readable by a web server. Raw input files are only ever opened
for reading.

:func:`record_reads` logs every file a process reads under given folders, with its hash at the
time it was read; the notebook runner (``tools/run_notebook.py``) turns that log into each
report's provenance.

Examples
--------
>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
>>> with atomic_write(target) as tmp:
...     _ = tmp.write_text("hello")
>>> target.read_text()
'hello'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

__all__ = [
    "atomic_write", "write_parquet", "write_text", "read_table", "file_hash", "progress_options", "progress", "current_umask",
    "record_reads", "read_log", "read_progress",
]

READERS = {
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".csv": pd.read_csv,
    ".gz": pd.read_csv,
    ".dta": pd.read_stata,
    ".feather": pd.read_feather,
    ".xlsx": pd.read_excel,
}


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps ``path``'s suffix so that writers choosing a format by suffix
    behave. On any exception the temporary file is removed and ``path`` is left untouched.
    ``tempfile.mkstemp`` creates the temporary file with mode 0600; before the rename it gets
    the mode a new file made by ``open(path, "w")`` would have (``0o666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def current_umask() -> int:
    """The process's file-mode creation mask, read without changing it where the OS allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting and restoring it
    (``os.umask`` has no read-only form).

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` to parquet atomically, byte-for-byte reproducible for the same frame."""
    with atomic_write(path) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_table(path: str | Path, **kwargs) -> pd.DataFrame:
    """Read a data file by its suffix (parquet, csv, csv.gz, dta, feather, xlsx); never writes.

    Raises
    ------
    FileNotFoundError
        Naming the file, if it does not exist.
    ValueError
        Naming the file, if its suffix is not one of the supported formats.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"cannot read {path}: unsupported suffix '{path.suffix}' (use one of {sorted(READERS)})")
    return reader(path, **kwargs)


def file_hash(path: str | Path, *, length: int = 12) -> str:
    """Return the first ``length`` hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def progress_options(progress: bool | None) -> dict:
    """Keyword arguments for ``tqdm``: ``{}`` to show the bar, ``{"disable": True}`` to hide it.

    ``False`` hides the bar; ``True`` and ``None`` show it, unless the environment variable
    ``TQDM_DISABLE`` is set (``1``/``true``), which hides every bar: the Makefile sets it so that
    published reports carry no progress bars, while the same notebook in JupyterLab shows them.
    The variable is read here rather than left to tqdm because the notebook bar of
    ``tqdm.auto`` (a widget in a Jupyter kernel, as under papermill) passes ``disable=False``
    explicitly and so never sees it: the reports would embed a dead widget.

    Examples
    --------
    >>> progress_options(False)
    {'disable': True}
    """
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return {"disable": True}
    return {} if progress is None or progress else {"disable": True}


# ---------------------------------------------------------------------------------------------
# progress: a tqdm bar for people, a state file for the build log
#: environment variable naming the file where running loops report their state (set by tools/run_notebook.py)
PROGRESS_ENV = "ANALYSIS_PROGRESS"
_ACTIVE: dict[int, dict] = {}
_PROGRESS_LOCK = threading.Lock()


def _write_progress(force: bool = False) -> None:
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    now = time.monotonic()
    with _PROGRESS_LOCK:
        if not force and now - _LOG.get("progress_written", -1e9) < 2.0:
            return
        _LOG["progress_written"] = now
        state = [dict(v) for _, v in sorted(_ACTIVE.items())]
    try:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"time": time.time(), "loops": state}, fh)
        os.replace(tmp, path)
    except OSError:  # the heartbeat must never break the computation it reports
        pass


class _Reported:
    """A tqdm bar that also reports its state to the file named by ``ANALYSIS_PROGRESS``."""

    def __init__(self, bar, desc: str, total: int | None):
        self.bar = bar
        self._key = id(self)
        _ACTIVE[self._key] = {"desc": desc, "n": 0, "total": total, "started": time.time(), "postfix": ""}
        _write_progress(force=True)

    def __getattr__(self, name):
        return getattr(self.bar, name)

    def __iter__(self):
        try:
            for item in self.bar:
                yield item
                self._advance(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _advance(self, n: float) -> None:
        entry = _ACTIVE.get(self._key)
        if entry is not None:
            entry["n"] += n
            _write_progress()

    def update(self, n: float = 1):
        self._advance(n)
        return self.bar.update(n)

    def set_postfix_str(self, s: str = "", refresh: bool = True):
        entry = _ACTIVE.get(self._key)
        if entry is not None:
            entry["postfix"] = str(s)
        return self.bar.set_postfix_str(s, refresh=refresh)

    def close(self):
        if _ACTIVE.pop(self._key, None) is not None:
            _write_progress(force=True)
        return self.bar.close()


def progress(iterable=None, *, desc: str, total: int | None = None, progress: bool | None = None, **kwargs):
    """A tqdm bar (``tqdm.auto``: a widget in JupyterLab) over ``iterable``, which also tells the build log.

    In JupyterLab it is a plain ``tqdm.auto.tqdm`` (see :func:`progress_options` for
    ``progress``). When the environment variable ``ANALYSIS_PROGRESS`` names a file (as
    ``tools/run_notebook.py`` sets it while ``make`` runs a notebook with ``TQDM_DISABLE=1``),
    the loop also writes its description, position and total there, at most every two seconds,
    from which the runner prints one line a minute into the build log; the published report
    gets no bar. Use it like tqdm: iterate, or ``update()`` / ``set_postfix_str()`` / ``close()``.

    Examples
    --------
    >>> sum(progress(range(3), desc="draws", progress=False))
    3
    """
    from tqdm.auto import tqdm

    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    bar = tqdm(iterable, desc=desc, total=total, **progress_options(progress), **kwargs)
    if not os.environ.get(PROGRESS_ENV):
        return bar
    return _Reported(bar, desc, total)


def read_progress(path: str | Path) -> list[dict]:
    """The loops running in a kernel, as :func:`progress` last reported them (empty if none)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")).get("loops", [])
    except (OSError, ValueError):
        return []


# ---------------------------------------------------------------------------------------------
# which files a process read: the inputs of a report's provenance

_LOG: dict = {"path": None, "under": (), "exclude": (), "seen": set(), "hashes": {}, "outputs": set()}
_BUSY = threading.local()


def _opened_for_reading(mode, flags) -> bool:
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    if isinstance(flags, int):
        return flags & (os.O_WRONLY | os.O_RDWR) == 0
    return True


def _note_read(source) -> None:
    """Log ``source`` if it is a file under the watched folders (never raises)."""
    if _LOG["path"] is None or getattr(_BUSY, "on", False) or not isinstance(source, (str, bytes, os.PathLike)):
        return
    _BUSY.on = True
    try:
        name = os.path.abspath(os.fsdecode(source))
        if name == _LOG["path"] or name in _LOG["outputs"] or not any(name.startswith(u) for u in _LOG["under"]):
            return
        if any(name.startswith(x) for x in _LOG["exclude"]):
            return
        st = os.stat(name)
        if not os.path.isfile(name):
            return
        key = (name, st.st_mtime_ns, st.st_size)
        digest = _LOG["hashes"].get(key) or _LOG["hashes"].setdefault(key, file_hash(name, length=64))
        if (name, digest) in _LOG["seen"]:
            return
        _LOG["seen"].add((name, digest))
        with open(_LOG["path"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"path": name, "sha256": digest}) + "\n")
    except Exception:  # provenance must never break the computation it records
        pass
    finally:
        _BUSY.on = False


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _LOG["path"] is not None and _opened_for_reading(args[1], args[2]):
        _note_read(args[0])
    elif event == "os.rename" and _LOG["path"] is not None and isinstance(args[1], (str, bytes, os.PathLike)):
        # the last step of an atomic write (os.replace): the file is this process's output from now on
        _LOG["outputs"].add(os.path.abspath(os.fsdecode(args[1])))


def _logging_reads(func):
    @functools.wraps(func)
    def wrapper(source, *args, **kwargs):
        _note_read(source)
        return func(source, *args, **kwargs)

    wrapper._records_reads = True
    return wrapper


def record_reads(log: str | Path | None, *, under: Sequence[str | Path], exclude: Sequence[str | Path] = ()) -> None:
    """From now on, append each file this process reads under ``under`` to ``log``, with its hash.

    Reads are caught where they happen, whoever makes them: an audit hook (:pep:`578`) sees every
    file Python opens (YAML, CSV, JSON, Stata, Excel...), and parquet files, which pyarrow opens
    in C++, are caught at ``pyarrow.parquet.read_table`` (what ``pandas.read_parquet`` calls).
    Each line of ``log`` is JSON with the file's absolute ``path`` and the SHA-256 of its content
    when it was read; a file read again unchanged is logged once. Files opened for writing are
    not logged, nor are files this process wrote atomically (``analysis.io.write_*``) and reads
    afterwards: those are its outputs (a run manifest it updates), not its inputs. Recording lasts for the life of the process (audit hooks cannot be removed);
    calling again switches to a new log.

    Parameters
    ----------
    log : str or pathlib.Path
        The JSON-lines file to append to (created if missing); ``None`` stops recording.
    under : sequence of str or pathlib.Path
        Folders whose files count as inputs (e.g. ``config/`` and ``data/``).
    exclude : sequence of str or pathlib.Path, default ()
        Folders inside those that do not (e.g. a cache).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "params.yaml").write_text("seed: 1")
    >>> record_reads(d / "reads.jsonl", under=[d])
    >>> _ = (d / "params.yaml").read_text()
    >>> [(pathlib.Path(r["path"]).name, r["sha256"][:8]) for r in read_log(d / "reads.jsonl")]
    [('params.yaml', 'e8b0d9f7')]
    >>> record_reads(None, under=[])  # stop recording
    """
    if log is None:
        _LOG.update(path=None, under=(), exclude=())
        return
    _LOG.update(
        path=os.path.abspath(log),
        under=tuple(os.path.abspath(u) + os.sep for u in under),
        exclude=tuple(os.path.abspath(x) + os.sep for x in exclude),
        seen=set(),
        outputs=set(),
    )
    if not _LOG.get("hooked"):
        sys.addaudithook(_audit)
        _LOG["hooked"] = True
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return
    if not getattr(pq.read_table, "_records_reads", False):
        pq.read_table = _logging_reads(pq.read_table)


def read_log(log: str | Path) -> list[dict]:
    """The entries :func:`record_reads` wrote to ``log`` (empty if it does not exist)."""
    path = Path(log)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
