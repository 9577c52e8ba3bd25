"""The national list of certified SME characteristic industrial clusters, its checks, its coverage,
and which counties may serve as never-treated controls while the list is incomplete.

``data/external/clusters_national.csv`` holds one row per certified cluster found in public
sources (``data/external/README.md``). While the list is incomplete (parameter
``data.clusters_complete: false``), a county missing from it may still hold a certified cluster,
so it is not a safe never-treated control: :func:`usable_control_counties` keeps as controls only
counties of provinces whose lists are known complete for every batch that matters
(``clusters_coverage.csv``: a source states how many clusters the province got and names them
all), and drops the rest (``policy="drop"``) or keeps them flagged (``policy="warn"``);
:func:`control_sample` applies that rule to a firm panel.

Who is treated is a parameter (``data.treatment``, :data:`DEFINITIONS`): :func:`membership` places
firms in clusters by the cluster's county and leading 2-digit industry (``cell``, the default),
by its core 4-digit codes (``core4``), by county alone (``county``: intent to treat at county
level) or by the band of related industries (``related``); :func:`treatment_statement` is the
sentence the reports print. Provinces certify clusters of their own (``clusters_provincial.csv``),
a competing treatment among the controls: :func:`provincial_flag` marks their firms.

Examples
--------
>>> import pandas as pd
>>> cl = pd.DataFrame({"cluster_id": ["A"], "batch": [2023], "province": ["江西省"], "county_code": ["360703"],
...                    "industry_cic2": ["21"], "source": ["s"], "cluster_name": ["南康现代家具"]})
>>> counties = pd.DataFrame({"county_code": [360703, 360102, 110108], "province": ["江西省", "江西省", "北京市"]})
>>> cov = pd.DataFrame({"batch": [2023], "province": ["江西省"], "n_certified": [1]})
>>> usable_control_counties(counties, cl, coverage=cov, complete=False, batches=[2023])[["county_code", "status"]].values.tolist()
[[360703, 'treated'], [360102, 'control'], [110108, 'dropped']]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.domain import ANNOUNCEMENTS, cohort_from_date

__all__ = [
    "DEFINITIONS", "ClusterListError", "as_assignment", "check_cluster_list", "control_sample", "coverage", "for_assignment",
    "membership", "provincial_flag", "read_cluster_list", "treatment_statement", "usable_control_counties",
]  # fmt: skip

BATCHES: tuple[int, ...] = (2022, 2023, 2024, 2025)
PER_BATCH = 100  # MIIT certified 100 clusters in each national batch
PROVINCIAL_YEARS = range(
    2018, 2031
)  # provincial programmes (some predate the national one, e.g. Shandong 2020)
MATCH_TYPES = ("core", "related", "none")

#: The treatment definitions (``data.treatment``) and the sentence the reports print for each.
DEFINITIONS: dict[str, str] = {
    "cell": "member firms are the firms of the certified cluster's county and its leading 2-digit industry (CIC, GB/T 4754-2017)",
    "core4": (
        "member firms are the firms of the certified cluster's county whose 4-digit industry is one of the leading industry's core "
        "4-digit codes; clusters without a clear 4-digit mapping are left out, and their county x 2-digit cells are kept out of the controls"
    ),
    "county": (
        "all manufacturing firms (CIC 13-43) of a county holding a certified cluster are treated from the announcement of its first "
        "cluster (intent to treat at county level)"
    ),
    "related": "member firms are the firms of the certified cluster's county in its leading 2-digit industry or in the related industries it spans",
}


class ClusterListError(ValueError):
    """The cluster list breaks its contract; the message names the rows."""


def read_cluster_list(path: str | Path, *, provincial: bool = False) -> pd.DataFrame:
    """Read and check a cluster list (``clusters_national.csv`` or ``clusters_provincial.csv``
    format); codes stay strings.

    Examples
    --------
    >>> from analysis.config import EXTERNAL
    >>> int(read_cluster_list(EXTERNAL / "clusters_national.csv")["batch"].min())
    2022
    """
    codes = {
        c: "string"
        for c in ("county_code", "industry_cic2", "industry_cic4", "related_cic2")
    }
    df = pd.read_csv(path, dtype=codes, keep_default_na=False, na_values=[""])
    check_cluster_list(
        df, what=str(path), batches=PROVINCIAL_YEARS if provincial else BATCHES
    )
    return df


def check_cluster_list(
    df: pd.DataFrame, *, what: str = "cluster list", batches: Iterable[int] = BATCHES
) -> None:
    """Check the contract: one row per cluster; batch one of ``batches`` (2022-2025 for the
    national list); county codes of six digits (or missing, with the source saying why); CIC
    codes 13-43 (2-digit), ``;``-separated 4-digit codes under the 2-digit one, related 2-digit
    codes 13-43 other than the core one; ``match_type`` core / related with a 2-digit code, none
    without; a source on every row; no county x 2-digit industry cell certified twice.

    Raises
    ------
    ClusterListError
        Naming the rule and the rows that break it.
    """
    need = [
        "cluster_id",
        "batch",
        "cluster_name",
        "province",
        "county_code",
        "industry_cic2",
        "source",
    ]
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise ClusterListError(f"{what} lacks column(s) {miss}")

    def fail(rule: str, mask) -> None:
        mask = (
            pd.Series(mask, index=df.index)
            .astype("boolean")
            .fillna(False)
            .to_numpy(dtype=bool)
        )
        if mask.any():
            raise ClusterListError(
                f"{what}: {rule} in rows {list(df.index[mask][:10])}: {df.loc[mask, 'cluster_name'].head(5).tolist()}"
            )

    def b(x) -> pd.Series:
        return pd.Series(x, index=df.index).astype("boolean").fillna(False)

    fail("cluster_id repeated", df["cluster_id"].duplicated(keep=False))
    fail(
        "same cluster listed twice in a batch",
        df.duplicated(["batch", "cluster_name"], keep=False),
    )
    batches = list(batches)
    fail(
        f"batch not one of {batches[0]}-{batches[-1]}",
        ~pd.to_numeric(df["batch"], errors="coerce").isin(batches),
    )
    src = df["source"].astype("string").str.strip()
    fail("no source", src.isna() | b(src == ""))
    code = df["county_code"].astype("string")
    fail("county_code not six digits", code.notna() & ~b(code.str.fullmatch(r"\d{6}")))
    fail(
        "county without code and without a note saying why",
        code.isna() & ~b(src.str.contains("no county-level code", regex=False)),
    )
    cic2 = pd.to_numeric(df["industry_cic2"], errors="coerce")
    fail(
        "industry_cic2 not a manufacturing code 13-43",
        df["industry_cic2"].notna() & ~b(cic2.between(13, 43)),
    )
    c2s = (
        df["industry_cic2"]
        .astype("string")
        .astype(object)
        .where(df["industry_cic2"].notna(), None)
    )
    if "industry_cic4" in df.columns:
        c4 = df["industry_cic4"].astype("string")
        ok4 = [
            pd.isna(x)
            or (
                isinstance(h, str)
                and all(
                    len(k) == 4 and k.isdigit() and k[:2] == h for k in x.split(";")
                )
            )
            for x, h in zip(c4, c2s)
        ]
        fail(
            "industry_cic4 not four-digit codes under industry_cic2",
            ~np.array(ok4, dtype=bool),
        )
    if "related_cic2" in df.columns:
        rel = df["related_cic2"].astype("string")
        okr = [
            pd.isna(x)
            or all(
                k.isdigit() and 13 <= int(k) <= 43 and k != (h or "")
                for k in x.split(";")
            )
            for x, h in zip(rel, c2s)
        ]
        fail(
            "related_cic2 not 2-digit manufacturing codes 13-43 other than industry_cic2",
            ~np.array(okr, dtype=bool),
        )
    if "match_type" in df.columns:
        mt = df["match_type"].astype("string")
        fail("match_type not one of core / related / none", ~mt.isin(MATCH_TYPES))
        fail(
            "match_type none with an industry_cic2, or core / related without one",
            b(mt == "none") != df["industry_cic2"].isna(),
        )
    cell = df["county_code"].notna() & df["industry_cic2"].notna()
    fail(
        "county x industry cell certified twice",
        cell & df.duplicated(["county_code", "industry_cic2"], keep=False),
    )


def coverage(df: pd.DataFrame) -> pd.DataFrame:
    """Rows found per batch against the 100 certified.

    Examples
    --------
    >>> coverage(pd.DataFrame({"batch": [2022, 2022, 2025]}))["share"].tolist()
    [0.02, 0.0, 0.0, 0.01]
    """
    n = df.groupby("batch").size().reindex(BATCHES, fill_value=0)
    return pd.DataFrame(
        {
            "batch": list(BATCHES),
            "rows": n.to_numpy(),
            "certified": PER_BATCH,
            "share": n.to_numpy() / PER_BATCH,
        }
    )


def usable_control_counties(
    counties: pd.DataFrame,
    clusters: pd.DataFrame,
    *,
    complete: bool,
    coverage: pd.DataFrame | None = None,
    batches: Iterable[int] = BATCHES,
    policy: str = "drop",
) -> pd.DataFrame:
    """Status of each county as a never-treated control, given how complete the list is.

    A county with a listed cluster is ``treated``. Any other county is a ``control`` if the list
    is complete, or if, for every batch in ``batches``, its province's list is known complete
    (``coverage`` has the province-batch and all its ``n_certified`` clusters are listed). Else
    it might hold an unlisted cluster: ``dropped`` (``policy="drop"``, the default) or ``warn``
    (``policy="warn"``: kept as control and listed).

    Parameters
    ----------
    counties : pandas.DataFrame
        ``county_code`` (int or str) and ``province`` (Chinese name as in the list) of the
        panel's counties.
    clusters : pandas.DataFrame
        The list (``county_code``, ``province``, ``batch``).
    complete : bool
        ``data.clusters_complete``.
    coverage : pandas.DataFrame, optional
        ``batch, province, n_certified``: province-batches whose full count a source gives.
    batches : iterable of int
        Batches that can treat within the sample (e.g. only those announced before its last year).
    policy : {"drop", "warn"}

    Returns
    -------
    pandas.DataFrame
        ``county_code, province, status, reason``, one row per county, and ``controls_ok``: a
        firm of the county outside its listed clusters is a safe control (a listed county may
        hold another, unlisted cluster, so this follows the province's coverage like any county).
    """
    if policy not in ("drop", "warn"):
        raise ValueError(f"policy must be 'drop' or 'warn', not {policy!r}")
    for c in ("county_code", "province"):
        if c not in counties.columns:
            raise ClusterListError(f"counties lack column '{c}'")
    out = (
        counties[["county_code", "province"]]
        .drop_duplicates("county_code")
        .reset_index(drop=True)
    )
    code = pd.to_numeric(out["county_code"], errors="coerce")
    listed = set(
        pd.to_numeric(clusters["county_code"], errors="coerce").dropna().astype("int64")
    )
    treated = code.isin(listed).to_numpy()
    batches = list(batches)
    safe = pd.Series(True, index=out.index)
    if not complete:
        ok = set()
        if coverage is not None and len(coverage):
            n_listed = clusters.groupby(["batch", "province"]).size()
            cov = coverage.assign(
                n_listed=[
                    int(n_listed.get((b, p), 0))
                    for b, p in zip(coverage["batch"], coverage["province"])
                ]
            )
            ok = {
                (int(b), p)
                for b, p, n, m in zip(
                    cov["batch"], cov["province"], cov["n_certified"], cov["n_listed"]
                )
                if m >= n
            }
        safe = out["province"].map(lambda p: all((b, p) in ok for b in batches))
    status = pd.Series("control", index=out.index)
    reason = pd.Series(
        "list complete" if complete else "province lists complete for every batch",
        index=out.index,
    )
    status[~safe.to_numpy()] = "dropped" if policy == "drop" else "warn"
    reason[~safe.to_numpy()] = (
        "list incomplete: the county may hold an unlisted certified cluster"
    )
    status[treated] = "treated"
    reason[treated] = "listed cluster"
    return out.assign(
        status=status.to_numpy(),
        reason=reason.to_numpy(),
        controls_ok=safe.to_numpy(dtype=bool),
    )


def _province_names() -> dict[int, str]:
    from analysis.config import EXTERNAL  # the committed GB/T 2260 province table

    t = pd.read_csv(EXTERNAL / "provinces.csv", dtype={"province_code": "int64"})
    return dict(zip(t["province_code"], t["province"]))


def province_of(county_code: pd.Series) -> pd.Series:
    """Chinese province name from the first two digits of a 6-digit county code (GB/T 2260).

    Examples
    --------
    >>> province_of(pd.Series([360703, 110108])).tolist()
    ['江西省', '北京市']
    """
    code = pd.to_numeric(county_code, errors="coerce") // 10_000
    return code.map(_province_names()).astype("string")


def for_assignment(clusters: pd.DataFrame) -> pd.DataFrame:
    """The list in the shape ``analysis.panel.assign_clusters`` takes: ``cluster_id``,
    ``county_code`` (int), ``industry_code`` (Int64, missing for a cluster outside manufacturing),
    ``batch``, ``announced`` (the date the final list was made public), ``industry_cic4`` and
    ``related_cic2`` (``;``-separated codes, for the ``core4`` and ``related`` definitions) and
    ``province``. Rows without a county code cannot be placed and are left out.

    Examples
    --------
    >>> cl = pd.DataFrame({"cluster_id": ["a", "b"], "county_code": ["360703", None], "industry_cic2": ["21", "35"],
    ...                    "batch": [2023, 2022], "public_date": ["2023-10-18", "2023-01-11"], "province": ["江西省", "贵州省"]})
    >>> for_assignment(cl)[["cluster_id", "county_code", "industry_code", "batch", "announced"]].values.tolist()
    [['a', 360703, 21, 2023, Timestamp('2023-10-18 00:00:00')]]
    """
    c = clusters.loc[clusters["county_code"].notna()]
    text = lambda col: (
        c[col].astype("string").to_numpy()
        if col in c.columns
        else pd.array([pd.NA] * len(c), dtype="string")
    )
    return pd.DataFrame(
        {
            "cluster_id": c["cluster_id"].astype(str).to_numpy(),
            "county_code": pd.to_numeric(c["county_code"]).astype("int64").to_numpy(),
            "industry_code": pd.to_numeric(c["industry_cic2"], errors="coerce")
            .astype("Int64")
            .to_numpy(),
            "batch": pd.to_numeric(c["batch"]).astype("int64").to_numpy(),
            "announced": pd.to_datetime(c["public_date"], format="mixed").to_numpy(),
            "industry_cic4": text("industry_cic4"),
            "related_cic2": text("related_cic2"),
            "province": c["province"].astype("string").to_numpy()
            if "province" in c.columns
            else province_of(c["county_code"]).to_numpy(),
        }
    )


def as_assignment(clusters: pd.DataFrame) -> pd.DataFrame:
    """A user's cluster file in either accepted form, as :func:`for_assignment` gives it.

    The list format of ``data/external/clusters_national.csv`` (``industry_cic2``, ``public_date``
    ...) is checked and converted; the short format of ``data/README.md`` (``cluster_id,
    county_code, industry_code, batch, announced``) passes with the optional columns added.
    """
    if "industry_cic2" in clusters.columns:
        df = clusters.copy()
        for col in ("county_code", "industry_cic2", "industry_cic4", "related_cic2"):
            if col in df.columns:
                df[col] = df[col].astype("string").str.replace(r"\.0$", "", regex=True)
        check_cluster_list(df, batches=PROVINCIAL_YEARS)
        return for_assignment(df)
    out = clusters.copy()
    for col in ("industry_cic4", "related_cic2"):
        if col not in out.columns:
            out[col] = pd.array([pd.NA] * len(out), dtype="string")
    if "province" not in out.columns:
        out["province"] = province_of(out["county_code"]).to_numpy()
    return out


def _codes(s: pd.Series) -> list[list[int]]:
    return [
        [int(k) for k in str(x).split(";") if k.strip()] if isinstance(x, str) else []
        for x in s.astype(object).where(s.notna(), None)
    ]


def _key(s: pd.Series) -> np.ndarray:
    return (
        pd.to_numeric(s, errors="coerce")
        .astype("Int64")
        .to_numpy(dtype="float64", na_value=np.nan)
    )


def membership(
    firms: pd.DataFrame,
    clusters: pd.DataFrame,
    definition: str = "cell",
    *,
    industry4: str = "industry_code4",
) -> pd.DataFrame:
    """Which certified cluster each firm-year belongs to, under a treatment definition.

    Parameters
    ----------
    firms : pandas.DataFrame
        ``county_code`` and ``industry_code`` (2-digit CIC); for ``core4`` also ``industry4``
        (the firm's 4-digit CIC code).
    clusters : pandas.DataFrame
        One row per cluster in the shape of :func:`for_assignment` (``cluster_id, county_code,
        industry_code, announced``; ``industry_cic4`` for ``core4``, ``related_cic2`` for
        ``related``; absent optional columns count as empty).
    definition : {"cell", "core4", "county", "related"}
        ``cell``: the cluster's county and leading 2-digit industry. ``core4``: the county and the
        cluster's core 4-digit codes. ``county``: every manufacturing firm (CIC 13-43) of the
        county. ``related``: the county and the 2-digit industries ``{industry_code} | related_cic2``.

    Returns
    -------
    pandas.DataFrame
        Aligned with ``firms``: ``cluster_id`` (string, missing for non-members) and ``unclear``
        (bool; ``core4`` only: the firm sits in the 2-digit cell of a cluster without a 4-digit
        mapping, or has no 4-digit code itself in the cell of one that has, so the definition
        cannot tell). Where several clusters match one firm (a county with two clusters under
        ``county``, overlapping bands under ``related``) the first announced one is taken (ties:
        the smaller ``cluster_id``).

    Examples
    --------
    >>> firms = pd.DataFrame({"county_code": [1, 1, 1, 2], "industry_code": [26, 30, 13, 26], "industry_code4": [2641, 3073, 1310, 2641]})
    >>> cl = pd.DataFrame({"cluster_id": ["A"], "county_code": [1], "industry_code": [26], "announced": [pd.Timestamp("2023-10-18")],
    ...                    "industry_cic4": ["2641"], "related_cic2": ["30"]})
    >>> {d: membership(firms, cl, d)["cluster_id"].tolist() for d in ("cell", "core4", "related", "county")}  # doctest: +NORMALIZE_WHITESPACE
    {'cell': ['A', <NA>, <NA>, <NA>], 'core4': ['A', <NA>, <NA>, <NA>], 'related': ['A', 'A', <NA>, <NA>], 'county': ['A', 'A', 'A', <NA>]}
    """
    if definition not in DEFINITIONS:
        raise ValueError(
            f"treatment definition must be one of {list(DEFINITIONS)}, not {definition!r}"
        )
    for col in ("county_code", "industry_code"):
        if col not in firms.columns:
            raise ClusterListError(
                f"firms lack column '{col}' (needed to place them in clusters)"
            )
    for col in ("cluster_id", "county_code", "industry_code", "announced"):
        if col not in clusters.columns:
            raise ClusterListError(
                f"cluster list lacks column '{col}'; it has {list(clusters.columns)}"
            )
    if definition == "core4" and industry4 not in firms.columns:
        raise ClusterListError(
            f"treatment definition 'core4' needs the firms' 4-digit CIC codes in column '{industry4}'; the firm data have {list(firms.columns)}"
        )
    n = len(firms)
    county = _key(firms["county_code"])
    ind = _key(firms["industry_code"])
    order = pd.DataFrame(
        {
            "cluster_id": clusters["cluster_id"].astype(str).to_numpy(),
            "announced": pd.to_datetime(clusters["announced"]).to_numpy(),
        }
    )
    rank = order.sort_values(
        ["announced", "cluster_id"], kind="stable"
    ).index.to_numpy()
    c = clusters.iloc[rank].reset_index(drop=True)
    c_county, c_ind = _key(c["county_code"]), _key(c["industry_code"])

    # key pairs (county, code) -> position of the first-announced cluster holding them
    if definition == "county":
        keys = pd.DataFrame({"county": c_county, "code": 0.0, "pos": np.arange(len(c))})
        f_code = np.where((ind >= 13) & (ind <= 43), 0.0, np.nan)
    elif definition == "cell":
        keys = pd.DataFrame(
            {"county": c_county, "code": c_ind, "pos": np.arange(len(c))}
        )
        f_code = ind
    elif definition == "related":
        rel = (
            _codes(c["related_cic2"])
            if "related_cic2" in c.columns
            else [[] for _ in range(len(c))]
        )
        band = [([int(i)] if not np.isnan(i) else []) + r for i, r in zip(c_ind, rel)]
        pos = np.repeat(np.arange(len(c)), [len(x) for x in band])
        keys = pd.DataFrame(
            {
                "county": c_county[pos],
                "code": np.array([k for x in band for k in x], dtype="float64"),
                "pos": pos,
            }
        )
        f_code = ind
    else:  # core4
        c4 = (
            _codes(c["industry_cic4"])
            if "industry_cic4" in c.columns
            else [[] for _ in range(len(c))]
        )
        pos = np.repeat(np.arange(len(c)), [len(x) for x in c4])
        keys = pd.DataFrame(
            {
                "county": c_county[pos],
                "code": np.array([k for x in c4 for k in x], dtype="float64"),
                "pos": pos,
            }
        )
        f_code = _key(firms[industry4])
    keys = keys.dropna().drop_duplicates(["county", "code"], keep="first")
    f = pd.DataFrame({"county": county, "code": f_code, "_row": np.arange(n)})
    hit = f.dropna().merge(keys, on=["county", "code"], how="inner")
    cid = np.full(n, None, dtype=object)
    cid[hit["_row"].to_numpy()] = (
        c["cluster_id"].astype(str).to_numpy()[hit["pos"].to_numpy()]
    )
    unclear = np.zeros(n, dtype=bool)
    if definition == "core4":
        c4 = (
            _codes(c["industry_cic4"])
            if "industry_cic4" in c.columns
            else [[] for _ in range(len(c))]
        )
        has4 = np.array([bool(x) for x in c4])
        cells = pd.DataFrame({"county": c_county, "code": c_ind, "has4": has4}).dropna(
            subset=["county", "code"]
        )
        in_cell = (
            pd.DataFrame({"county": county, "code": ind, "_row": np.arange(n)})
            .dropna()
            .merge(cells, on=["county", "code"], how="inner")
        )
        no4 = np.isnan(f_code[in_cell["_row"].to_numpy()])
        bad = in_cell["_row"].to_numpy()[~in_cell["has4"].to_numpy() | no4]
        unclear[bad] = True
        unclear &= pd.isna(cid)
    return pd.DataFrame(
        {"cluster_id": pd.array(cid, dtype="string"), "unclear": unclear},
        index=firms.index,
    )


def provincial_flag(firms: pd.DataFrame, provincial: pd.DataFrame) -> pd.Series:
    """True for firms in the county x 2-digit industry cell of a provincially certified cluster
    (any year: a firm-level, time-invariant flag for a robustness sample that drops them).
    National members in such a cell are flagged too; drop ``provincial_cluster & cluster_id.isna()``
    to remove only controls.

    Parameters
    ----------
    firms : pandas.DataFrame
        ``firm_id``, ``county_code``, ``industry_code``.
    provincial : pandas.DataFrame
        The provincial list in the shape of :func:`for_assignment`.

    Examples
    --------
    >>> firms = pd.DataFrame({"firm_id": [1, 2], "county_code": [1, 1], "industry_code": [26, 30]})
    >>> prov = pd.DataFrame({"cluster_id": ["P"], "county_code": [1], "industry_code": [30], "announced": [pd.Timestamp("2023-07-01")]})
    >>> provincial_flag(firms, prov).tolist()
    [False, True]
    """
    if provincial is None or not len(provincial):
        return pd.Series(False, index=firms.index, name="provincial_cluster")
    inside = membership(firms, provincial, "cell")["cluster_id"].notna()
    by_firm = (
        inside.groupby(firms["firm_id"].to_numpy()).transform("any")
        if "firm_id" in firms.columns
        else inside
    )
    return pd.Series(
        by_firm.to_numpy(dtype=bool), index=firms.index, name="provincial_cluster"
    )


def control_sample(
    firms: pd.DataFrame,
    clusters: pd.DataFrame,
    *,
    complete: bool,
    coverage: pd.DataFrame | None,
    policy: str = "drop",
    late_month: int = 7,
    last_year: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the never-treated-control rule to a firm panel whose clusters are assigned.

    A firm-year outside every listed cluster (``cluster_id`` missing) is a safe never-treated
    control only if the list is complete (``complete=True``), or if its province's lists are
    known complete (``coverage``) for every national batch first treating within the data
    (cohort, by ``late_month``, at most ``last_year``). Other non-members are dropped
    (``policy="drop"``) or kept with ``control_unverified = True`` (``policy="warn"``). Members
    are always kept.

    Parameters
    ----------
    firms : pandas.DataFrame
        With ``county_code`` and ``cluster_id`` (from ``analysis.panel.assign_clusters``).
    clusters : pandas.DataFrame
        The list in the shape of :func:`for_assignment` (``province``, ``county_code``, ``batch``).
    complete, coverage, policy
        ``data.clusters_complete``, ``clusters_coverage.csv``, ``data.clusters_incomplete_controls``.
    late_month, last_year
        The cohort rule and the last data year (default: the firms' last year).

    Returns
    -------
    (firms, counties)
        The firms kept, with ``control_unverified`` (bool), and one row per county:
        ``county_code, province, status, reason, controls_ok, n_firm_years, n_dropped``.

    Examples
    --------
    >>> firms = pd.DataFrame({"county_code": [360703, 360102, 110108], "cluster_id": ["A", None, None], "year": 2024})
    >>> cl = pd.DataFrame({"cluster_id": ["A"], "county_code": [360703], "province": ["江西省"], "batch": [2023]})
    >>> cov = pd.DataFrame({"batch": [2022, 2023, 2024], "province": ["江西省"] * 3, "n_certified": [0, 1, 0]})
    >>> kept, counties = control_sample(firms, cl, complete=False, coverage=cov)
    >>> kept["county_code"].tolist(), counties["status"].tolist()
    ([360703, 360102], ['treated', 'control', 'dropped'])
    """
    if policy not in ("drop", "warn"):
        raise ValueError(f"policy must be 'drop' or 'warn', not {policy!r}")
    last = int(firms["year"].max()) if last_year is None else int(last_year)
    # the national batches that first treat within the data (the 2025 list treats from 2026 with late_month 7)
    from_notice = {b: cohort_from_date(p, late_month) for b, p in ANNOUNCEMENTS.items()}
    batches = [b for b in BATCHES if from_notice[b] <= last]
    counties = pd.DataFrame(
        {
            "county_code": pd.to_numeric(firms["county_code"])
            .drop_duplicates()
            .to_numpy()
        }
    )
    counties["province"] = province_of(counties["county_code"]).to_numpy()
    status = usable_control_counties(
        counties,
        clusters,
        complete=complete,
        coverage=coverage,
        batches=batches,
        policy=policy,
    )
    member = firms["cluster_id"].notna().to_numpy()
    ok = pd.Series(
        status["controls_ok"].to_numpy(), index=status["county_code"].to_numpy()
    )
    safe = (
        pd.to_numeric(firms["county_code"]).map(ok).fillna(False).to_numpy(dtype=bool)
    )
    unverified = ~member & ~safe
    counts = (
        pd.DataFrame(
            {
                "county_code": pd.to_numeric(firms["county_code"]).to_numpy(),
                "drop": unverified,
            }
        )
        .groupby("county_code")["drop"]
        .agg(["size", "sum"])
    )
    status["n_firm_years"] = (
        status["county_code"].map(counts["size"]).fillna(0).astype("int64").to_numpy()
    )
    status["n_dropped"] = (
        status["county_code"].map(counts["sum"]).fillna(0).astype("int64").to_numpy()
        if policy == "drop"
        else 0
    )
    out = firms.assign(control_unverified=unverified)
    if policy == "drop":
        out = out[~unverified]
    return out, status


def treatment_statement(data: Mapping[str, Any]) -> str:
    """The sentence a report prints about who is treated and who serves as control.

    Parameters
    ----------
    data : mapping
        ``params["data"]`` of a parameter set: ``treatment``, ``source``, ``clusters_complete``,
        ``clusters_incomplete_controls``, ``drop_provincial_clusters``.

    Examples
    --------
    >>> treatment_statement({"treatment": "county", "source": "synthetic"})[:58]
    'Treatment definition `county`: all manufacturing firms (CI'
    """
    d = data.get("treatment", "cell")
    if d not in DEFINITIONS:
        raise ValueError(
            f"data.treatment must be one of {list(DEFINITIONS)}, not {d!r}"
        )
    text = f"Treatment definition `{d}`: {DEFINITIONS[d]}."
    if data.get("source", "synthetic") == "synthetic":
        text += " The synthetic world's list of clusters is complete, so every firm outside them is a never-treated control."
    elif data.get("clusters_complete", False):
        text += " The cluster list is taken as complete: every firm outside it is a never-treated control."
    elif data.get("clusters_incomplete_controls", "drop") == "drop":
        text += (
            " The cluster list is incomplete, so firms outside it count as never-treated controls only in provinces whose lists are"
            " known complete (data/external/clusters_coverage.csv); the others are dropped."
        )
    else:
        text += (
            " The cluster list is incomplete; firms outside it in provinces whose lists are not known complete are kept as controls"
            " but flagged (`control_unverified`)."
        )
    if data.get("drop_provincial_clusters", False):
        text += " Firms in provincially certified clusters outside the national ones are dropped (a competing treatment)."
    return text
