"""Reading users' firm files: CSV in any of the encodings Chinese data come in, Stata, parquet, Excel.

Two rules hold whatever the format:

- **Identifier and code columns are text.** The legal-unit code (法人代码, 9 characters, often with
  leading zeros), the county code, the industry code and the registration type are read as
  strings, so ``000000417`` stays ``000000417`` and ``0610`` stays a 4-digit code. Formats that
  store them as numbers (Stata, parquet, Excel) lose leading zeros at the source; the reader
  turns such numbers into digit strings and says so (:attr:`FileInfo.notes`); ``data.pad_ids``
  restores a known width.
- **The encoding of a CSV file is checked, not assumed.** UTF-8, UTF-8 with a byte-order mark and
  GBK/GB18030 are detected (GB18030 is read for GBK: it is its superset); an ``encoding`` given in
  the parameter set is used as given. Either way the whole file is decoded once before it is
  parsed, so a wrong encoding stops with the file, the line and the encoding that fits instead of
  a bare ``UnicodeDecodeError`` (or, worse, garbled headers that match nothing).

Raw files are opened for reading only.

Examples
--------
>>> import tempfile, pathlib, pandas as pd
>>> p = pathlib.Path(tempfile.mkdtemp()) / "asif_2004.csv"
>>> pd.DataFrame({"法人代码": ["000000417"], "工业总产值": [1250.5]}).to_csv(p, index=False, encoding="gbk")
>>> detect_encoding(p)
'gb18030'
>>> df, info = read_columns(p, {"法人代码": "text", "工业总产值": "number"})
>>> df["法人代码"].tolist(), info.encoding
(['000000417'], 'gb18030')
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.schema import PanelError

__all__ = ["SUFFIXES", "FileInfo", "SourceError", "check_encoding", "detect_encoding", "normalize_header", "read_columns", "read_header"]

#: suffixes the reader knows, by format
SUFFIXES = {".csv": "csv", ".txt": "csv", ".gz": "csv", ".dta": "stata", ".parquet": "parquet", ".pq": "parquet",
            ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel", ".feather": "feather"}
#: cells read as missing in CSV files (besides empty cells)
NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "#N/A", "-", "--", ".", "—"]
_GB = {"gbk", "gb2312", "gb18030", "cp936", "hz", "big5"}  # big5: Traditional; charset-normalizer sometimes guesses it for short GBK samples


class SourceError(PanelError):
    """A user's input file cannot become the panel as it is; the message names the file, the column,
    example rows and the fix."""


@dataclass
class FileInfo:
    """What reading one file found."""

    path: Path
    format: str
    encoding: str | None = None
    rows: int = 0
    notes: list[str] = field(default_factory=list)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gz" and not path.name.lower().endswith((".csv.gz", ".txt.gz")):
        suffix = ""
    fmt = SUFFIXES.get(suffix)
    if fmt is None:
        raise SourceError(f"{path}: cannot read files ending in '{path.suffix}'; use CSV, Stata .dta, parquet, feather or Excel ({', '.join(sorted(SUFFIXES))})")
    return fmt


def _open_binary(path: Path):
    if path.name.lower().endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")


def detect_encoding(path: str | Path, *, sample_bytes: int = 1 << 20) -> str:
    """The encoding of a text file: ``utf-8-sig`` (BOM), ``utf-8`` or ``gb18030`` (GBK and GB2312 are its subsets).

    Looks at the first ``sample_bytes``; :func:`check_encoding` then decodes the whole file.

    Raises
    ------
    SourceError
        If the sample is neither UTF-8 nor a Chinese GB encoding, naming the best guess and the fix.
    """
    path = Path(path)
    with _open_binary(path) as fh:
        sample = fh.read(sample_bytes)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(sample) < sample_bytes)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(sample, final=len(sample) < sample_bytes)
        return "gb18030"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    guess = best.encoding if best is not None else None
    if guess is not None and guess.lower().replace("_", "") in _GB:
        return "gb18030"
    raise SourceError(
        f"{path}: the file is neither UTF-8 nor GBK/GB18030 (best guess: {guess or 'unknown'}). "
        f"Fix: re-save it as UTF-8, or give its encoding in the parameter set (data.encoding: {guess or 'big5'})."
    )


def check_encoding(path: str | Path, encoding: str, *, chunk: int = 1 << 24) -> None:
    """Decode the whole file with ``encoding``; raise :class:`SourceError` at the first bad byte.

    The message gives the line and byte offset, the bytes found, and the encoding the file seems
    to be in (so the fix is one line of the parameter set).
    """
    path = Path(path)
    dec = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 0
    with _open_binary(path) as fh:
        while True:
            block = fh.read(chunk)
            try:
                dec.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                pos = offset + exc.start
                line = lines + block[: exc.start].count(b"\n") + 1
                try:
                    fits = detect_encoding(path)
                except SourceError:
                    fits = None
                fix = f"data.encoding: {fits}" if fits and fits != encoding else "data.encoding: null (detect), or re-save the file as UTF-8"
                raise SourceError(
                    f"{path}: not valid {encoding} at line {line} (byte {pos}: {block[exc.start:exc.start + 4]!r}); "
                    f"the file looks like {fits or 'another encoding'}. Fix: {fix}"
                ) from None
            if not block:
                return
            lines += block.count(b"\n")
            offset += len(block)


def normalize_header(name: str) -> str:
    """A header as compared with known names: NFKC (full-width to half-width), no spaces, brackets,
    underscores or colons, lower case.

    Examples
    --------
    >>> normalize_header("工业总产值（当年价格）"), normalize_header(" Firm_ID ")
    ('工业总产值当年价格', 'firmid')
    """
    s = unicodedata.normalize("NFKC", str(name)).lower()
    return "".join(ch for ch in s if not (ch.isspace() or ch in "()[]{}<>_-·:：,，、/\\'\"`"))


def _strip_header(name: object) -> str:
    return unicodedata.normalize("NFC", str(name)).strip().lstrip("\ufeff")


def read_header(path: str | Path, *, encoding: str | None = None, sheet: str | int | None = None) -> tuple[list[str], str | None]:
    """Column names of a file (stripped of spaces and a BOM) and the encoding used (CSV only)."""
    path = Path(path)
    fmt = _format(path)
    if fmt == "csv":
        enc = encoding or detect_encoding(path)
        with _open_binary(path) as fh:
            first = fh.readline(1 << 20)
        try:
            text = first.decode(enc)
        except UnicodeDecodeError:
            check_encoding(path, enc)
            raise
        row = next(csv.reader(io.StringIO(text)), [])
        return [_strip_header(c) for c in row], enc
    if fmt == "stata":
        import pyreadstat

        _, meta = pyreadstat.read_dta(str(path), metadataonly=True, **({"encoding": encoding} if encoding else {}))
        return [_strip_header(c) for c in meta.column_names], None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return [_strip_header(c) for c in pq.read_schema(path).names], None
    if fmt == "feather":
        import pyarrow.feather as pf

        return [_strip_header(c) for c in pf.read_table(path, memory_map=True).schema.names], None
    df = pd.read_excel(path, sheet_name=sheet or 0, nrows=0, engine="openpyxl")
    return [_strip_header(c) for c in df.columns], None


def _digits_text(s: pd.Series) -> tuple[pd.Series, bool]:
    """A column of identifiers or codes as text; numbers become digit strings (``417.0`` -> ``417``)."""
    if getattr(s.array, "_pa_array", None) is not None:  # Arrow strings (CSV, parquet): trim in Arrow
        import pyarrow as pa
        import pyarrow.compute as pc

        a = pc.utf8_trim_whitespace(s.array._pa_array)
        a = pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)
        return pd.Series(a.to_pandas(), index=s.index).astype("str"), False
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        out = s.astype("str").where(s.notna()).str.strip()
        return out.where(out != ""), False
    if pd.api.types.is_integer_dtype(s):
        return s.astype("str").where(s.notna()), True
    v = s.to_numpy(dtype="float64", na_value=np.nan)
    out = np.full(len(v), None, dtype=object)
    ok = ~np.isnan(v)
    whole = ok & (v == np.round(v))
    out[whole] = v[whole].astype(np.int64).astype(str)
    out[ok & ~whole] = s[ok & ~whole].astype(str).to_numpy()
    return pd.Series(out, index=s.index, dtype="str"), True


def read_columns(
    path: str | Path,
    columns: dict[str, str],
    *,
    encoding: str | None = None,
    sheet: str | int | None = None,
    check: bool = True,
) -> tuple[pd.DataFrame, FileInfo]:
    """Read the named columns of one file, identifiers and codes as text.

    Parameters
    ----------
    path : str | Path
        A CSV (``.csv``, ``.txt``, ``.csv.gz``), Stata ``.dta``, parquet, feather or Excel file.
    columns : dict[str, str]
        Raw column name -> ``"text"`` (identifiers and codes: read as strings, leading zeros kept),
        ``"number"`` (parsed as numbers; a cell that is not a number is an error naming it) or
        ``"label"`` (categories: Stata value labels applied).
    encoding : str, optional
        CSV and old Stata files: the encoding; ``None`` detects it (:func:`detect_encoding`).
    sheet : str | int, optional
        Excel: the sheet (name or 0-based position); ``None`` is the first.
    check : bool
        CSV: decode the whole file first (:func:`check_encoding`).

    Returns
    -------
    (DataFrame, FileInfo)
        The columns under their raw names, and what the reader noticed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    fmt = _format(path)
    info = FileInfo(path=path, format=fmt)
    names = list(columns)
    if fmt == "csv":
        df = _read_csv(path, columns, encoding, check, info)
    elif fmt == "stata":
        df = _read_stata(path, columns, encoding, info)
    elif fmt in ("parquet", "feather"):
        import pyarrow.feather as pf
        import pyarrow.parquet as pq

        orig = pq.read_schema(path).names if fmt == "parquet" else pf.read_table(path, memory_map=True).schema.names
        by_name = {_strip_header(o): o for o in orig}
        cols = [by_name[c] for c in names]
        table = pq.read_table(path, columns=cols) if fmt == "parquet" else pf.read_table(path, columns=cols)
        df = table.to_pandas()
        df.columns = names
    else:
        have = read_header(path, sheet=sheet)[0]
        df = pd.read_excel(path, sheet_name=sheet or 0, engine="openpyxl", dtype={c: object for c in names if columns[c] == "text"})
        df.columns = have
        df = df[names]
    for c in names:
        kind = columns[c]
        if kind == "text":
            df[c], was_number = _digits_text(df[c])
            if was_number and fmt != "csv" and df[c].notna().any():
                info.notes.append(f"column '{c}' is stored as numbers in this {fmt} file: leading zeros, if it had any, were lost at the source (data.pad_ids restores a fixed width)")
        elif kind == "number":
            df[c] = _as_number(df[c], c, path)
    info.rows = len(df)
    return df, info


def _as_number(s: pd.Series, name: str, path: Path) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float64")
    if pd.api.types.is_numeric_dtype(s):
        return s
    text = s.astype("str").where(s.notna()).str.strip()
    text = text.where(~text.isin(NA_VALUES))
    clean = text.str.replace(",", "", regex=False).str.replace("，", "", regex=False)
    out = pd.to_numeric(clean, errors="coerce")
    bad = out.isna() & clean.notna()
    if bad.any():
        ex = pd.DataFrame({"row": (np.flatnonzero(bad.to_numpy())[:5] + 2), name: text[bad].head(5).to_numpy()})
        raise SourceError(
            f"{path}: column '{name}' should hold numbers, but {int(bad.sum())} cell(s) do not "
            f"(row = line in the file), examples:\n{ex.to_string(index=False)}\n"
            f"Fix: correct those cells, or map the column to another field if it is not what its header says."
        )
    return out


def _decode_error(path: Path, raw: bytes, encoding: str, exc: UnicodeDecodeError) -> SourceError:
    line = raw.count(b"\n", 0, exc.start) + 1
    try:
        fits = detect_encoding(path)
    except SourceError:
        fits = None
    fix = f"data.encoding: {fits}" if fits and fits != encoding else "data.encoding: null (detect), or re-save the file as UTF-8"
    return SourceError(
        f"{path}: not valid {encoding} at line {line} (byte {exc.start}: {raw[exc.start:exc.start + 4]!r}); "
        f"the file looks like {fits or 'another encoding'}. Fix: {fix}"
    )


def _read_csv(path: Path, columns: dict[str, str], encoding: str | None, check: bool, info: FileInfo) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    enc = encoding or detect_encoding(path)
    info.encoding = enc
    with _open_binary(path) as fh:
        raw = fh.read()
    # one pass decodes (and so checks) the whole file; the parser then reads UTF-8 from memory
    try:
        if enc in ("utf-8", "utf-8-sig"):
            if check:
                codecs.decode(raw, "utf-8")
            data = raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw
        else:
            data = raw.decode(enc).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, raw, enc, exc) from None
    del raw
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).decode("utf-8").lstrip("\ufeff").rstrip("\r")
    in_file = next(csv.reader(io.StringIO(first)), [])
    by_name = {_strip_header(c): c for c in in_file}
    missing = [c for c in columns if c not in by_name]
    if missing:
        raise SourceError(f"{path}: no column(s) {missing}; it has {[_strip_header(c) for c in in_file]}")
    read_opts = pcsv.ReadOptions(block_size=1 << 24, skip_rows=1, column_names=in_file)
    conv = pcsv.ConvertOptions(
        include_columns=[by_name[c] for c in columns],
        column_types={by_name[c]: pa.string() for c, kind in columns.items() if kind in ("text", "label")},
        null_values=NA_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        table = pcsv.read_csv(pa.BufferReader(data), read_options=read_opts, convert_options=conv)
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{path}: cannot be parsed as CSV ({exc}). Fix: check the delimiter (a comma is expected) and the quoting of the lines named.") from None
    del data
    df = table.to_pandas()
    df.columns = list(columns)
    return df


def _read_stata(path: Path, columns: dict[str, str], encoding: str | None, info: FileInfo) -> pd.DataFrame:
    import pyreadstat

    header, _ = read_header(path, encoding=encoding)
    _, meta = pyreadstat.read_dta(str(path), metadataonly=True, **({"encoding": encoding} if encoding else {}))
    orig = dict(zip(header, meta.column_names))
    try:
        df, meta = pyreadstat.read_dta(str(path), usecols=[orig[c] for c in columns], apply_value_formats=False, **({"encoding": encoding} if encoding else {}))
    except pyreadstat.ReadstatError as exc:
        raise SourceError(f"{path}: Stata file cannot be read ({exc}). Fix: if it was saved by Stata 13 or older with Chinese text, give data.encoding: gb18030") from None
    df.columns = list(columns)
    labels = {_strip_header(k): v for k, v in (meta.variable_value_labels or {}).items()}
    for c, kind in columns.items():
        if kind == "label" and c in labels:
            df[c] = df[c].map(labels[c]).where(df[c].notna() & df[c].isin(list(labels[c])), df[c].astype("str").where(df[c].notna()))
        elif c in labels:
            info.notes.append(f"column '{c}' has Stata value labels; its codes are used (labels such as {list(labels[c].items())[:2]})")
    return df
