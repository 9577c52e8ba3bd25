"""Atomic writes and tolerant reads.

Every file the pipeline writes goes through :func:`atomic_write`: the content is written to a
temporary file in the same folder and renamed into place only when complete, so a failed step
never leaves a half-written file that ``make`` would take as up to date. Raw input files are
only ever opened for reading.

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
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

__all__ = ["atomic_write", "write_parquet", "write_text", "read_table", "file_hash", "progress_options"]

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
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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

    ``None`` and ``True`` leave tqdm's defaults, which the environment can override
    (``TQDM_DISABLE=1``: the Makefile sets it so published reports carry no progress bars, while
    the same notebook in JupyterLab shows them). Passing ``disable=None`` explicitly instead would
    bypass the environment.
    """
    return {} if progress is None or progress else {"disable": True}
