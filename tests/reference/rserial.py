"""A small reader of R's serialization format (XDR, versions 2 and 3), enough for the reference data
of the HonestDiD package: ``.rda`` files (``save()``), ``.rds`` files and knitr's lazy-load caches
(``.rdx`` / ``.rdb``) holding numeric vectors, matrices, lists and tibbles.

pyreadr (librdata) reads only data frames and atomic vectors and skips lists, and the HonestDiD data
sets are lists (``BCdata_EventStudy`` is ``list(betahat, sigma, ...)``; ``VignetteResults`` a list of
tibbles), hence this reader. It follows the format as documented in R's "R Internals" manual
(section 1.8, Serialization formats); objects it does not know (closures, environments, bytecode)
come back as :class:`RObject` placeholders or raise, they are not needed here.

Values come back as Python objects: ``NULL`` -> ``None``; atomic vectors -> :class:`RVector`
(a ``numpy`` array with an ``attrs`` dict: ``names``, ``dim``, ``class``, ...); lists -> :class:`RList`
(a ``list`` with ``attrs``); pairlists -> ``dict`` of tag -> value.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

NA_INTEGER = -(2**31)


class RVector(np.ndarray):
    """A numpy array carrying R attributes in ``.attrs``."""

    def __new__(cls, values, attrs=None):
        obj = np.asarray(values).view(cls)
        obj.attrs = dict(attrs or {})
        return obj

    def __array_finalize__(self, obj):
        self.attrs = getattr(obj, "attrs", {})


class RList(list):
    """An R list (VECSXP) with its attributes in ``.attrs``."""

    def __init__(self, items, attrs=None):
        super().__init__(items)
        self.attrs = dict(attrs or {})

    def named(self) -> dict[str, Any]:
        names = self.attrs.get("names")
        if names is None:
            raise KeyError("list has no names")
        return dict(zip(list(names), self))


class RObject:
    """Placeholder for an R object this reader does not decode (kept with its type code)."""

    def __init__(self, sexptype: int, value: Any = None):
        self.sexptype, self.value = sexptype, value

    def __repr__(self) -> str:
        return f"RObject(type={self.sexptype})"


class _Reader:
    def __init__(self, data: bytes):
        self.b, self.i = data, 0
        self.refs: list[Any] = []

    def take(self, n: int) -> bytes:
        out = self.b[self.i:self.i + n]
        if len(out) != n:
            raise ValueError("truncated R serialization stream")
        self.i += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def header(self) -> None:
        fmt = self.take(2)
        if fmt != b"X\n":
            raise ValueError(f"only XDR serialization is supported, got {fmt!r}")
        version = self.int()
        self.int()  # writer version
        self.int()  # minimal reader version
        if version == 3:
            self.take(self.int())  # native encoding
        elif version != 2:
            raise ValueError(f"unknown serialization version {version}")

    def attributes(self, has_attr: bool) -> dict[str, Any]:
        if not has_attr:
            return {}
        pl = self.item()
        return pl if isinstance(pl, dict) else {}

    def item(self) -> Any:
        flags = self.int()
        t = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if t == 254:  # NILVALUE_SXP
            return None
        if t in (242, 241, 253, 252, 251, 250):  # empty/base/global env, unbound, missing, base namespace
            return RObject(t)
        if t == 255:  # REFSXP
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if t in (247, 248, 249):  # persistent reference, package, namespace: a vector of strings
            if self.int() != 0:
                raise ValueError("names in persistent strings are not supported")
            info = [self.item() for _ in range(self.int())]
            obj = RObject(t, info)
            self.refs.append(obj)
            return obj
        if t == 4:  # ENVSXP
            obj = RObject(t)
            self.refs.append(obj)
            self.int()  # locked
            self.item()  # enclosure
            frame = self.item()
            self.item()  # hash table
            self.item()  # attributes
            obj.value = frame
            return obj
        if t in (2, 6, 3, 5, 17, 239, 240):  # pairlists, language, closure, promise, dots
            out: dict[str, Any] = {}
            k = 0
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                car = self.item()
                key = tag if isinstance(tag, str) else f"[[{k}]]"
                out[key] = car
                k += 1
                nxt = self.int()
                nt = nxt & 0xFF
                if nt == 254:
                    break
                if nt not in (2, 6, 239, 240):
                    # the CDR is not a pairlist: read it as an item from its flags
                    self.i -= 4
                    out["[[cdr]]"] = self.item()
                    break
                has_attr, has_tag = bool(nxt & (1 << 9)), bool(nxt & (1 << 10))
            if t in (3, 5):
                return RObject(t, out)
            return out
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            return self.take(n).decode("utf-8", errors="replace")
        if t in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            vals = np.frombuffer(self.take(4 * n), dtype=">i4").astype(np.int64)
            attrs = self.attributes(has_attr)
            return RVector(vals, attrs)
        if t == 14:  # REALSXP
            n = self.length()
            vals = np.frombuffer(self.take(8 * n), dtype=">f8").astype(np.float64)
            attrs = self.attributes(has_attr)
            return RVector(vals, attrs)
        if t == 15:  # CPLXSXP
            n = self.length()
            vals = np.frombuffer(self.take(16 * n), dtype=">f8").astype(np.float64)
            attrs = self.attributes(has_attr)
            return RVector(vals[0::2] + 1j * vals[1::2], attrs)
        if t == 16:  # STRSXP
            n = self.length()
            vals = [self.item() for _ in range(n)]
            attrs = self.attributes(has_attr)
            return RVector(np.array(vals, dtype=object), attrs)
        if t in (19, 20):  # VECSXP, EXPRSXP
            n = self.length()
            vals = [self.item() for _ in range(n)]
            attrs = self.attributes(has_attr)
            return RList(vals, attrs)
        if t == 24:  # RAWSXP
            n = self.length()
            return RVector(np.frombuffer(self.take(n), dtype=np.uint8), self.attributes(has_attr))
        if t == 238:  # ALTREP_SXP
            info = self.item()
            state = self.item()
            attrs = self.item()
            cls = list(info.values())[0] if isinstance(info, dict) else None
            if cls == "compact_intseq":
                n, start, step = (float(v) for v in state)
                return RVector(start + step * np.arange(int(n)), attrs if isinstance(attrs, dict) else {})
            if cls == "compact_realseq":
                n, start, step = (float(v) for v in state)
                return RVector(start + step * np.arange(int(n)), attrs if isinstance(attrs, dict) else {})
            if cls and cls.startswith("wrap_"):
                inner = list(state.values())[0] if isinstance(state, dict) else state[0]
                if isinstance(attrs, dict) and isinstance(inner, RVector):
                    inner.attrs.update(attrs)
                return inner
            if cls == "deferred_string":
                inner = list(state.values())[0] if isinstance(state, dict) else state
                return RVector(np.array([str(v) for v in np.asarray(inner).ravel()], dtype=object))
            return RObject(t, (info, state, attrs))
        if t == 25:  # S4SXP
            return RObject(t, self.attributes(has_attr))
        if t in (21, 22, 23):  # BCODESXP, EXTPTRSXP, WEAKREFSXP
            raise ValueError(f"R serialization type {t} (bytecode / external pointer) is not supported")
        raise ValueError(f"unknown R serialization type {t} at byte {self.i}")


def _decompress(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


def unserialize(data: bytes) -> Any:
    """Decode one serialized R object (``serialize()`` / ``saveRDS()`` output, uncompressed)."""
    r = _Reader(data)
    r.header()
    return r.item()


def read_rds(path: str | Path) -> Any:
    """The object of an ``.rds`` file (or a knitr ``.rdx`` index)."""
    return unserialize(_decompress(Path(path).read_bytes()))


def read_rda(path: str | Path) -> dict[str, Any]:
    """The named objects of an ``.rda`` / ``.RData`` file written by ``save()``."""
    raw = _decompress(Path(path).read_bytes())
    if raw[:5] not in (b"RDX2\n", b"RDX3\n"):
        raise ValueError(f"{path}: not an R save() file (header {raw[:5]!r})")
    r = _Reader(raw[5:])
    r.header()
    obj = r.item()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pairlist of objects")
    return obj


def read_lazyload(rdx: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """Objects of a lazy-load database (``NAME.rdx`` index + ``NAME.rdb`` data), e.g. a knitr cache.

    Each entry of the ``.rdb`` is a 4-byte big-endian length followed by a zlib stream holding one
    serialized object; the index lists ``variables`` as name -> (offset, length).
    """
    rdx = Path(rdx)
    index = read_rds(rdx).named()
    variables = index["variables"].named()
    blob = rdx.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (off, n) in variables.items():
        if names is not None and name not in names:
            continue
        chunk = blob[int(off):int(off) + int(n)]
        out[name] = unserialize(zlib.decompress(chunk[4:]))
    return out
