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

import numpy as np
import pandas as pd

__all__ = [
    "atomic_write", "write_parquet", "append_parquet_columns", "read_parquet_columns", "write_text", "read_table",
    "file_hash", "progress_options", "progress", "current_umask",
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


def read_parquet_columns(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read ``columns`` of a parquet file, those it has (in the order given, each once); all if ``None``.

    A census-size panel has 45 columns and most steps need a handful: reading only those keeps
    a step at the size of its work rather than of the whole file. Columns the file lacks are left
    out, not an error, so the caller's own check (e.g. :func:`analysis.availability.require_inputs`)
    says what is missing in words a user can act on.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.parquet"
    >>> _ = write_parquet(pd.DataFrame({"a": [1], "b": [2.0], "c": ["x"]}), f)
    >>> list(read_parquet_columns(f, ["c", "a", "zz", "a"]).columns)
    ['c', 'a']
    """
    if columns is None:
        return pd.read_parquet(path)
    import pyarrow.parquet as pq

    have = set(pq.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in dict.fromkeys(columns) if c in have])


def append_parquet_columns(source: str | Path, added: pd.DataFrame, path: str | Path, *, keys: pd.DataFrame | None = None,
                           batch_rows: int = 1 << 20) -> Path:
    """Write ``source``'s rows with the columns of ``added`` appended, to ``path`` (atomically).

    ``source`` is read ``batch_rows`` rows at a time, never whole, so a step that loaded a few
    columns of a census-size file can write the file with its new columns without holding the
    rest. Row ``i`` of ``added`` goes with row ``i`` of ``source``; a column of ``added`` that
    ``source`` already has replaces it. The file reads back as ``pd.read_parquet(source)`` with
    ``added``'s columns assigned (same dtypes; pandas' own metadata is extended, not dropped).

    Parameters
    ----------
    source : path
        The parquet file whose rows are kept; only ever read.
    added : pandas.DataFrame
        The new columns, one row per row of ``source`` (its index is ignored).
    path : path
        Where to write; may not be ``source``.
    keys : pandas.DataFrame, optional
        Columns the caller holds of ``source`` (e.g. ``firm_id``, ``year``), in its own row order;
        each batch is checked equal to them, so rows that were filtered or reordered since
        ``source`` was read are an error naming the first row that differs, not a silent misalignment.
    batch_rows : int
        Rows per batch (and per row group of the written file).

    Raises
    ------
    ValueError
        If ``added`` (or ``keys``) does not have one row per row of ``source``, or a key differs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_parquet(pd.DataFrame({"id": [1, 2, 3], "x": ["a", "b", "c"]}), d / "in.parquet")
    >>> _ = append_parquet_columns(d / "in.parquet", pd.DataFrame({"y": [0.5, None, 2.0]}), d / "out.parquet", batch_rows=2)
    >>> pd.read_parquet(d / "out.parquet")["y"].tolist()
    [0.5, nan, 2.0]
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, path = Path(source), Path(path)
    if source.resolve() == path.resolve():
        raise ValueError(f"append_parquet_columns: cannot write {path} onto its own source")
    src = pq.ParquetFile(source)
    n = src.metadata.num_rows
    for what, frame in (("the new columns", added), ("the key columns", keys)):
        if frame is not None and len(frame) != n:
            raise ValueError(f"{source} has {n:,} rows, {what} ({', '.join(map(str, frame.columns))}) {len(frame):,}: "
                             "they must be the file's rows in the file's order")
    added = added.reset_index(drop=True)
    keep = [c for c in src.schema_arrow.names if c not in added.columns]
    if keys is not None and (unknown := [k for k in keys.columns if k not in keep]):
        raise ValueError(f"append_parquet_columns: key column(s) {', '.join(map(str, unknown))} are not kept from {source} "
                         f"(it has {', '.join(src.schema_arrow.names)}; a key cannot also be a new column)")
    new = pa.Schema.from_pandas(added.iloc[: min(n, batch_rows)], preserve_index=False)
    meta = json.loads(src.schema_arrow.metadata[b"pandas"]) if b"pandas" in (src.schema_arrow.metadata or {}) else None
    fields = [src.schema_arrow.field(c) for c in keep] + [new.field(c) for c in added.columns]
    schema = pa.schema(fields)
    if meta is not None:
        meta["columns"] = [c for c in meta["columns"] if c["name"] not in added.columns] + new.pandas_metadata["columns"]
        schema = schema.with_metadata({**src.schema_arrow.metadata, b"pandas": json.dumps(meta).encode()})
    start, held = 0, {} if keys is None else {k: keys[k].to_numpy() for k in keys.columns}
    with atomic_write(path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in src.iter_batches(batch_size=batch_rows, columns=keep, use_threads=True):
            stop = start + batch.num_rows
            for k, column in held.items():
                want, got = column[start:stop], batch.column(k).to_numpy(zero_copy_only=False)
                if not np.array_equal(want, got):
                    i = int(np.flatnonzero(want != got)[0])
                    file_value, frame_value = (v.item() if isinstance(v, np.generic) else v for v in (got[i], want[i]))
                    raise ValueError(f"row {start + i:,} of {source} has {k} = {file_value!r}, the frame being written "
                                     f"{frame_value!r}: its rows are not the file's (filtered or reordered after reading)")
            part = pa.Table.from_pandas(added.iloc[start:stop], schema=new, preserve_index=False)
            table = pa.Table.from_batches([batch])
            for f in new:
                table = table.append_column(f, part.column(f.name))
            writer.write_table(table.replace_schema_metadata(schema.metadata), row_group_size=batch_rows)
            start = stop
    return path


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
