"""Firm-name normalisation for record linkage, after He, Tong, Zhang and He (2018).

He, Tong, Zhang and He (2018, *Scientific Data* 5:180042, "A database linking Chinese patents to
China's census firms") match CNIPA applicants to firms of the Annual Survey of Industrial Firms by
name after a standardisation: full-width characters to half-width, punctuation and spaces removed,
brackets unified, and legal-form suffixes (有限公司, 有限责任公司, 股份有限公司, 集团 ...) brought to a
common form. This module does the same with pandas string methods on the *distinct* names only
(a column of millions of applicant names has far fewer distinct values), so it stays vectorised.

The key is the name *stem*: the legal-form suffix is split off (``legal_form`` keeps it), so
``X有限公司``, ``X有限责任公司`` and ``X(集团)股份有限公司`` share the key ``X``. That favours recall;
two different firms that share a stem are resolved by county, or reported as ambiguous.

Examples
--------
>>> import pandas as pd
>>> s = pd.Series(["（北京）华星 电子有限责任公司", "北京华星电子有限公司", "华星电子(集团)股份有限公司", None])
>>> name_key(s).tolist()
['北京华星电子', '北京华星电子', '华星电子', <NA>]
>>> legal_form(s).tolist()
['有限公司', '有限公司', '集团股份有限公司', <NA>]
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LEGAL_FORMS", "LinkageError", "LinkageReport", "firm_keys", "fuzzy_candidates", "is_organisation",
    "legal_form", "link_by_name", "name_key", "normalize_name", "split_names",
]

#: Legal-form suffixes, longest first, each mapped to its canonical form. Latin forms are matched
#: after upper-casing and removal of punctuation and spaces ("Co., Ltd." -> "COLTD").
LEGAL_FORMS: dict[str, str] = {
    "集团股份有限公司": "集团股份有限公司",
    "集团有限责任公司": "集团有限公司",
    "集团有限公司": "集团有限公司",
    "股份有限责任公司": "股份有限公司",
    "股份有限公司": "股份有限公司",
    "股份公司": "股份有限公司",
    "有限责任公司": "有限公司",
    "有限公司": "有限公司",
    "集团总公司": "集团有限公司",
    "集团公司": "集团有限公司",
    "总公司": "公司",
    "集团": "集团有限公司",
    "公司": "公司",
    "COLTD": "有限公司",
    "CORPORATION": "公司",
    "CORP": "公司",
    "LTD": "有限公司",
    "INC": "公司",
}

# brackets of every width and shape are "unified" by removing them with the other punctuation:
# "X(集团)" and "X【集团】" and "X集团" give one key. Everything that is not a letter or digit goes.
_PUNCT = r"[^\p{L}\p{N}]+"  # RE2 (pyarrow) syntax
_SUFFIX = "(?P<form>" + "|".join(sorted(map(re.escape, LEGAL_FORMS), key=len, reverse=True)) + ")$"
_ORG_WORDS = (
    "公司|厂|集团|大学|学院|学校|研究|院|所|中心|医院|局|委员会|协会|合作社|站|部|实验室|"
    "COLTD|LTD|INC|CORP|GMBH|UNIV|INST|LLC"
)


def _to_arrow(s: pd.Series) -> pa.Array:
    arr = pa.array(s.astype("string[pyarrow]"))
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _to_series(arr: pa.Array, index: pd.Index, name=None) -> pd.Series:
    if pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type):
        return pd.Series(pd.arrays.ArrowStringArray(arr), index=index, name=name)
    return pd.Series(arr.to_numpy(zero_copy_only=False), index=index, name=name)


def _on_uniques(s: pd.Series, func) -> pd.Series:
    """Apply ``func`` (pyarrow array -> pyarrow array) to the distinct values of ``s`` only."""
    enc = pc.dictionary_encode(_to_arrow(s))
    out = func(enc.dictionary)
    return _to_series(pc.take(out, enc.indices), s.index, s.name)


def _normalise_unique(a: pa.Array) -> pa.Array:
    a = pc.utf8_normalize(a, form="NFKC")  # full-width letters, digits, brackets and spaces -> half-width
    a = pc.replace_substring_regex(pc.utf8_upper(a), pattern=_PUNCT, replacement="")
    return pc.if_else(pc.equal(a, ""), pa.scalar(None, a.type), a)


def _form(a: pa.Array) -> pa.Array:
    return pc.struct_field(pc.extract_regex(a, _SUFFIX), [0])


def _strip(a: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(a, pattern=_SUFFIX, replacement="")


def _canonical(form: pa.Array) -> pa.Array:
    keys = pa.array(list(LEGAL_FORMS), type=form.type)
    vals = pa.array(list(LEGAL_FORMS.values()), type=form.type)
    return pc.take(vals, pc.index_in(form, value_set=keys))


def normalize_name(s: pd.Series) -> pd.Series:
    """Standardised full name: NFKC (full- to half-width), brackets unified and dropped,
    punctuation and spaces removed, Latin letters upper-cased, legal form made canonical.

    Parameters
    ----------
    s : pandas.Series
        Names (str; missing allowed).

    Returns
    -------
    pandas.Series
        ``string`` dtype, missing where the input is missing or has no letters.

    Examples
    --------
    >>> normalize_name(pd.Series(["华星电子（集团）有限责任公司", "Ａｃｍｅ Co., Ltd."])).tolist()
    ['华星电子集团有限公司', 'ACME有限公司']
    """

    def func(u: pa.Array) -> pa.Array:
        n = _normalise_unique(u)
        return pc.binary_join_element_wise(_strip(n), pc.fill_null(_canonical(_form(n)), ""), pa.scalar("", n.type))

    return _on_uniques(s, func)


def name_key(s: pd.Series) -> pd.Series:
    """Linkage key: the standardised name without its legal-form suffix (the stem).

    Examples
    --------
    >>> name_key(pd.Series(["华星电子(集团)股份有限公司", "华星电子集团"])).tolist()
    ['华星电子', '华星电子']
    """

    def func(u: pa.Array) -> pa.Array:
        n = _normalise_unique(u)
        n = _strip(_strip(n))  # "X集团 有限公司" -> "X": at most two suffixes stacked
        return pc.if_else(pc.equal(n, ""), pa.scalar(None, n.type), n)

    return _on_uniques(s, func)


def legal_form(s: pd.Series) -> pd.Series:
    """Canonical legal form of each name (``有限公司``, ``股份有限公司``, ...), missing if none.

    Examples
    --------
    >>> legal_form(pd.Series(["A有限责任公司", "B大学"])).tolist()
    ['有限公司', <NA>]
    """
    return _on_uniques(s, lambda u: _canonical(_form(_normalise_unique(u))))


def is_organisation(s: pd.Series) -> pd.Series:
    """True where a standardised name looks like an organisation rather than a person
    (contains 公司, 厂, 大学, 研究所, LTD ...). Patent applicants also include individuals.

    Examples
    --------
    >>> is_organisation(pd.Series(["张伟", "清华大学", "华星电子有限公司"])).tolist()
    [False, True, True]
    """
    out = _on_uniques(s, lambda u: pc.fill_null(pc.match_substring_regex(_normalise_unique(u), _ORG_WORDS), False))
    return out.astype(bool)


def split_names(s: pd.Series, sep: str = ";") -> pd.Series:
    """Split a column of ``sep``-separated names (full-width ``；`` too) into one row per name,
    keeping the index of the source row; blank parts are dropped.

    Examples
    --------
    >>> split_names(pd.Series(["甲公司; 乙大学", "丙厂；"])).tolist()
    ['甲公司', '乙大学', '丙厂']
    """
    a = pc.replace_substring(_to_arrow(s), "；", sep)
    lists = pc.split_pattern(a, sep)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    parent = pc.list_parent_indices(lists).to_numpy()
    keep = pc.fill_null(pc.not_equal(flat, ""), False).to_numpy(zero_copy_only=False)
    return _to_series(flat.filter(pa.array(keep)), s.index[parent[keep]], s.name)


# ----------------------------------------------------------------------------------------
# linkage by name key: shared by patents and emissions
# ----------------------------------------------------------------------------------------
class LinkageError(ValueError):
    """A source file or firm file cannot be linked; the message names the column or rows."""


def firm_keys(
    firms: pd.DataFrame,
    *,
    name: str = "firm_name",
    former_names: str | None = "former_names",
    county: str | None = "county_code",
    county_name: str | None = "county_name",
) -> pd.DataFrame:
    """The firm file's names as linkage keys: one row per (key, firm) with the name's source.

    Parameters
    ----------
    firms : pandas.DataFrame
        One or more rows per firm with ``firm_id`` and ``name``; optional ``former_names``
        (``;``-separated), ``county`` (code) and ``county_name`` (used to find the county in an
        applicant's address).
    name, former_names, county, county_name : str
        Column names; optional columns that are absent are ignored.

    Returns
    -------
    pandas.DataFrame
        ``key, firm_id, name_source`` (``current`` or ``former``; a key that is a firm's current
        name is not also kept as its former name) and, where given, ``county_code, county_name``.

    Examples
    --------
    >>> f = pd.DataFrame({"firm_id": [1, 2], "firm_name": ["甲电子有限公司", "乙厂"], "former_names": ["甲无线电厂", None]})
    >>> firm_keys(f)[["key", "firm_id", "name_source"]].values.tolist()
    [['甲电子', 1, 'current'], ['乙厂', 2, 'current'], ['甲无线电厂', 1, 'former']]
    """
    for col in ("firm_id", name):
        if col not in firms.columns:
            raise LinkageError(f"firm file lacks column '{col}'; it has {list(firms.columns)}")
    extra = [c for c in (county, county_name) if c is not None and c in firms.columns]
    base = firms[["firm_id", *extra]].rename(columns={county: "county_code", county_name: "county_name"})
    cur = base.assign(key=name_key(firms[name]), name_source="current")
    parts = [cur]
    if former_names is not None and former_names in firms.columns:
        long = split_names(firms[former_names])
        if len(long):
            old = base.loc[long.index].assign(key=name_key(long).to_numpy(), name_source="former")
            parts.append(old)
    keys = pd.concat(parts, ignore_index=True)
    keys = keys[keys["key"].notna()]
    keys = keys.drop_duplicates(["key", "firm_id"], keep="first").reset_index(drop=True)
    return keys[["key", "firm_id", "name_source", *[c for c in ("county_code", "county_name") if c in keys.columns]]]


def link_by_name(rows: pd.DataFrame, keys: pd.DataFrame, *, within_county: bool = False) -> pd.DataFrame:
    """Link rows carrying a name key to firms; vectorised joins only.

    A key that is the current name of exactly one firm links to it (``exact``); a key that is
    no firm's current name but exactly one firm's former name links to that firm (``former``).
    A key shared by several firms is resolved by county (``county``): the row's ``county_code``
    equal to the firm's, or, without codes, the firm's ``county_name`` found in the row's
    ``address``. What stays unresolved is ``ambiguous`` (with its candidates), what finds no key
    is ``unmatched``. With ``within_county=True`` a row that has a county code links only to
    firms of that county (emission records).

    Parameters
    ----------
    rows : pandas.DataFrame
        ``key`` and, optionally, ``county_code`` and ``address``; any index.
    keys : pandas.DataFrame
        From :func:`firm_keys`.
    within_county : bool
        Restrict candidates to the row's county wherever the row has one.

    Returns
    -------
    pandas.DataFrame
        Same index as ``rows``: ``firm_id`` (Int64, missing unless linked), ``method`` and
        ``candidates`` (``;``-joined firm ids of an ambiguous row).

    Examples
    --------
    >>> keys = pd.DataFrame({"key": ["甲", "乙", "乙"], "firm_id": [1, 2, 3], "name_source": "current",
    ...                      "county_code": [10, 10, 20]})
    >>> rows = pd.DataFrame({"key": ["甲", "乙", "乙", "丙"], "county_code": [10, 20, None, 10]})
    >>> link_by_name(rows, keys)[["firm_id", "method"]].values.tolist()
    [[1, 'exact'], [3, 'county'], [<NA>, 'ambiguous'], [<NA>, 'unmatched']]
    """
    if "key" not in rows.columns:
        raise LinkageError("rows to link lack the column 'key' (use name_key on the name column)")
    n = len(rows)
    # keys as integer codes (one factorisation of row and firm keys together): joins on int64
    both = pd.concat([pd.Series(rows["key"].array), pd.Series(keys["key"].array)], ignore_index=True)
    codes = pd.factorize(both, use_na_sentinel=True)[0]
    r = pd.DataFrame({"_row": np.arange(n), "kc": codes[:n]})
    has_code = "county_code" in rows.columns and "county_code" in keys.columns
    if has_code:
        r["county_code"] = pd.to_numeric(rows["county_code"], errors="coerce").to_numpy()
    # candidates: current-name firms if the key has any, else former-name firms
    k = pd.DataFrame({"kc": codes[n:], "firm_id": keys["firm_id"].to_numpy(), "current": (keys["name_source"] == "current").to_numpy(), "_k": np.arange(len(keys))})
    if has_code:
        k["county_code_firm"] = pd.to_numeric(keys["county_code"], errors="coerce").to_numpy()
    k = k[k["current"] | ~k["kc"].isin(k.loc[k["current"], "kc"])]
    k = k.assign(n_cand=k.groupby("kc")["firm_id"].transform("nunique"))

    out = pd.DataFrame({"firm_id": pd.array([pd.NA] * n, dtype="Int64"), "method": "unmatched", "candidates": pd.array([pd.NA] * n, dtype="string")})
    m = r[r["kc"] >= 0].merge(k, on="kc", how="inner")
    if within_county and has_code:
        restrict = m["county_code"].notna()
        m = m[~restrict | (m["county_code"] == m["county_code_firm"])]
        m["n_cand"] = m.groupby("_row")["firm_id"].transform("size")
    single = m[m["n_cand"] == 1]
    rows_single = single["_row"].to_numpy()
    out.loc[rows_single, "firm_id"] = single["firm_id"].to_numpy()
    out.loc[rows_single, "method"] = np.where(single["current"].to_numpy(), "exact", "former")
    multi = m[m["n_cand"] > 1].copy()
    if len(multi):
        hit = np.zeros(len(multi), dtype=bool)
        if has_code:
            hit |= (multi["county_code"] == multi["county_code_firm"]).fillna(False).to_numpy(dtype=bool)
        if "address" in rows.columns and "county_name" in keys.columns:
            addr = rows["address"].iloc[multi["_row"].to_numpy()].to_numpy(dtype=object)
            cname = keys["county_name"].iloc[multi["_k"].to_numpy()].to_numpy(dtype=object)
            hit |= np.array([isinstance(a, str) and isinstance(c, str) and c in a for a, c in zip(addr, cname)], dtype=bool)
        hits = multi[hit]
        n_hit = hits.groupby("_row")["firm_id"].transform("nunique")
        won = hits[n_hit == 1]
        out.loc[won["_row"].to_numpy(), "firm_id"] = won["firm_id"].to_numpy()
        out.loc[won["_row"].to_numpy(), "method"] = "county"
        left = multi[~multi["_row"].isin(won["_row"])]
        if len(left):
            cands = _joined_ids(left, "_row")
            out.loc[cands.index.to_numpy(), "method"] = "ambiguous"
            out.loc[cands.index.to_numpy(), "candidates"] = cands.to_numpy()
    out.loc[codes[:n] < 0, "method"] = "no name"
    out.index = rows.index
    return out


def fuzzy_candidates(names: pd.Series, keys: pd.DataFrame, *, limit: int = 3, score_cutoff: float = 80.0) -> pd.DataFrame:
    """Best-scoring firm keys for unmatched names, for a human to review (never to link).

    Scores are ``rapidfuzz.fuzz.ratio`` (normalised Indel similarity, 0-100) between name keys,
    computed with ``rapidfuzz.process.cdist`` over all firm keys.

    Parameters
    ----------
    names : pandas.Series
        Name keys to score (a review list: tens to a few hundred).
    keys : pandas.DataFrame
        From :func:`firm_keys`.
    limit, score_cutoff : int and float, default 3 and 80.0
        Candidates per name and the lowest score kept.

    Returns
    -------
    pandas.DataFrame
        ``key, candidate_key, candidate_firm_ids, score``, best first within each name.

    Examples
    --------
    >>> keys = pd.DataFrame({"key": ["华星电子", "华新电子", "远大机械"], "firm_id": [1, 2, 3], "name_source": "current"})
    >>> fuzzy_candidates(pd.Series(["华星电子科技"]), keys, limit=1)[["candidate_key", "score"]].values.tolist()
    [['华星电子', 80.0]]
    """
    from rapidfuzz import fuzz, process

    q = pd.Series(names.dropna().unique(), dtype=object)
    cols = ["key", "candidate_key", "candidate_firm_ids", "score"]
    ch = keys["key"].dropna().unique().astype(object)
    if not len(q) or not len(ch):
        return pd.DataFrame(columns=cols)
    rows = []
    for start in range(0, len(q), 64):  # bounded memory: 64 x n_keys uint8 scores at a time
        block = q.iloc[start : start + 64].tolist()
        sc = process.cdist(block, ch, scorer=fuzz.ratio, dtype=np.uint8, score_cutoff=int(score_cutoff), workers=1)
        top = np.argsort(-sc.astype(np.int16), axis=1, kind="stable")[:, :limit]
        for i, name in enumerate(block):
            for j in top[i]:
                if sc[i, j] >= score_cutoff:
                    rows.append((name, ch[j], float(sc[i, j])))
    out = pd.DataFrame(rows, columns=["key", "candidate_key", "score"])
    ids = _joined_ids(keys[keys["key"].isin(out["candidate_key"])], "key").rename("candidate_firm_ids")
    out = out.merge(ids, left_on="candidate_key", right_index=True, how="left")
    return out[cols].reset_index(drop=True)


def _joined_ids(df: pd.DataFrame, by: str) -> pd.Series:
    """``;``-joined sorted distinct firm ids per value of ``by`` (vectorised apart from the join)."""
    d = df[[by, "firm_id"]].drop_duplicates().sort_values([by, "firm_id"])
    return d.assign(s=d["firm_id"].astype(str)).groupby(by)["s"].agg(";".join)


class LinkageReport:
    """What a linkage did: shares linked, ambiguous matches and frequent unmatched names.

    Attributes
    ----------
    shares : pandas.DataFrame
        Records and the share linked by group (type and year for patents, year for emissions).
    methods : pandas.DataFrame
        Names by link method (``firm_id, exact, former, county, ambiguous, unmatched, ...``).
    ambiguous : pandas.DataFrame
        Names whose key several firms share and county did not resolve, with the candidates.
    unmatched : pandas.DataFrame
        Most frequent unmatched organisation names, with fuzzy candidates for review.
    """

    def __init__(self, what: str, shares: pd.DataFrame, methods: pd.DataFrame, ambiguous: pd.DataFrame, unmatched: pd.DataFrame, notes: dict | None = None):
        self.what, self.shares, self.methods, self.ambiguous, self.unmatched = what, shares, methods, ambiguous, unmatched
        self.notes = dict(notes or {})

    @property
    def share_linked(self) -> float:
        """Share of all records with at least one linked firm."""
        n = self.shares["n_records"].sum()
        return float(self.shares["n_linked"].sum() / n) if n else float("nan")

    def __repr__(self) -> str:
        meth = ", ".join(f"{m} {n:,}" for m, n in zip(self.methods["method"], self.methods["n"]))
        notes = "".join(f"\n  {k}: {v}" for k, v in self.notes.items())
        return (
            f"LinkageReport({self.what}): {self.shares['n_records'].sum():,} records, {self.share_linked:.1%} linked\n"
            f"  names by method: {meth}\n  ambiguous names for review: {len(self.ambiguous):,}; "
            f"unmatched names listed: {len(self.unmatched):,}{notes}"
        )

    def _repr_html_(self) -> str:
        parts = [f"<h4>Linkage report: {self.what}</h4><pre>{self!r}</pre>", self.shares.to_html(index=False)]
        if len(self.ambiguous):
            parts += ["<h5>Ambiguous (for review)</h5>", self.ambiguous.head(20).to_html(index=False)]
        if len(self.unmatched):
            parts += ["<h5>Most frequent unmatched</h5>", self.unmatched.head(20).to_html(index=False)]
        return "\n".join(parts)

    def write(self, folder) -> list:
        """Write the four tables as CSV files ``linkage_<what>_<table>.csv`` atomically."""
        from pathlib import Path

        from analysis.io import atomic_write

        out = []
        for name in ("shares", "methods", "ambiguous", "unmatched"):
            path = Path(folder) / f"linkage_{self.what}_{name}.csv"
            with atomic_write(path) as tmp:
                getattr(self, name).to_csv(tmp, index=False)
            out.append(path)
        return out
