"""The national list of certified SME characteristic industrial clusters, its checks, its coverage,
and which counties may serve as never-treated controls while the list is incomplete.

``data/external/clusters_national.csv`` holds one row per certified cluster found in public
sources (``data/external/README.md``). While the list is incomplete (parameter
``data.clusters_complete: false``), a county missing from it may still hold a certified cluster,
so it is not a safe never-treated control: :func:`usable_control_counties` keeps as controls only
counties of provinces whose lists are known complete for every batch that matters
(``clusters_coverage.csv``: a source states how many clusters the province got and names them
all), and drops the rest (``policy="drop"``) or keeps them flagged (``policy="warn"``).

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

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

__all__ = ["ClusterListError", "check_cluster_list", "coverage", "for_assignment", "read_cluster_list", "usable_control_counties"]

BATCHES: tuple[int, ...] = (2022, 2023, 2024, 2025)
PER_BATCH = 100  # MIIT certified 100 clusters in each national batch


class ClusterListError(ValueError):
    """The cluster list breaks its contract; the message names the rows."""


def read_cluster_list(path: str | Path) -> pd.DataFrame:
    """Read and check a cluster list (``clusters_national.csv`` format); codes stay strings.

    Examples
    --------
    >>> from analysis.config import EXTERNAL
    >>> int(read_cluster_list(EXTERNAL / "clusters_national.csv")["batch"].min())
    2022
    """
    df = pd.read_csv(path, dtype={"county_code": "string", "industry_cic2": "string", "industry_cic4": "string"}, keep_default_na=False, na_values=[""])
    check_cluster_list(df, what=str(path))
    return df


def check_cluster_list(df: pd.DataFrame, *, what: str = "cluster list") -> None:
    """Check the contract: one row per cluster; batch one of 2022-2025; county codes of six
    digits whose first two digits are the province's (or missing, with the source saying why);
    CIC codes 13-43 (2-digit) that head the 4-digit code; a source on every row; no county x
    2-digit industry cell certified twice.

    Raises
    ------
    ClusterListError
        Naming the rule and the rows that break it.
    """
    need = ["cluster_id", "batch", "cluster_name", "province", "county_code", "industry_cic2", "source"]
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise ClusterListError(f"{what} lacks column(s) {miss}")

    def fail(rule: str, mask) -> None:
        mask = pd.Series(mask, index=df.index).astype("boolean").fillna(False).to_numpy(dtype=bool)
        if mask.any():
            raise ClusterListError(f"{what}: {rule} in rows {list(df.index[mask][:10])}: {df.loc[mask, 'cluster_name'].head(5).tolist()}")

    def b(x) -> pd.Series:
        return pd.Series(x, index=df.index).astype("boolean").fillna(False)

    fail("cluster_id repeated", df["cluster_id"].duplicated(keep=False))
    fail("same cluster listed twice in a batch", df.duplicated(["batch", "cluster_name"], keep=False))
    fail("batch not one of 2022-2025", ~pd.to_numeric(df["batch"], errors="coerce").isin(BATCHES))
    src = df["source"].astype("string").str.strip()
    fail("no source", src.isna() | b(src == ""))
    code = df["county_code"].astype("string")
    fail("county_code not six digits", code.notna() & ~b(code.str.fullmatch(r"\d{6}")))
    fail("county without code and without a note saying why", code.isna() & ~b(src.str.contains("no county-level code", regex=False)))
    cic2 = pd.to_numeric(df["industry_cic2"], errors="coerce")
    fail("industry_cic2 not a manufacturing code 13-43", df["industry_cic2"].notna() & ~b(cic2.between(13, 43)))
    if "industry_cic4" in df.columns:
        c4 = df["industry_cic4"].astype("string")
        fail("industry_cic4 not four digits under industry_cic2", c4.notna() & ~(b(c4.str.fullmatch(r"\d{4}")) & b(c4.str[:2] == df["industry_cic2"].astype("string"))))
    cell = df["county_code"].notna() & df["industry_cic2"].notna()
    fail("county x industry cell certified twice", cell & df.duplicated(["county_code", "industry_cic2"], keep=False))


def coverage(df: pd.DataFrame) -> pd.DataFrame:
    """Rows found per batch against the 100 certified.

    Examples
    --------
    >>> coverage(pd.DataFrame({"batch": [2022, 2022, 2025]}))["share"].tolist()
    [0.02, 0.0, 0.0, 0.01]
    """
    n = df.groupby("batch").size().reindex(BATCHES, fill_value=0)
    return pd.DataFrame({"batch": list(BATCHES), "rows": n.to_numpy(), "certified": PER_BATCH, "share": n.to_numpy() / PER_BATCH})


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
        ``county_code, province, status, reason``, one row per county.
    """
    if policy not in ("drop", "warn"):
        raise ValueError(f"policy must be 'drop' or 'warn', not {policy!r}")
    for c in ("county_code", "province"):
        if c not in counties.columns:
            raise ClusterListError(f"counties lack column '{c}'")
    out = counties[["county_code", "province"]].drop_duplicates("county_code").reset_index(drop=True)
    code = pd.to_numeric(out["county_code"], errors="coerce")
    listed = set(pd.to_numeric(clusters["county_code"], errors="coerce").dropna().astype("int64"))
    treated = code.isin(listed).to_numpy()
    batches = list(batches)
    safe = pd.Series(True, index=out.index)
    if not complete:
        ok = set()
        if coverage is not None and len(coverage):
            n_listed = clusters.groupby(["batch", "province"]).size()
            cov = coverage.assign(n_listed=[int(n_listed.get((b, p), 0)) for b, p in zip(coverage["batch"], coverage["province"])])
            ok = {(int(b), p) for b, p, n, m in zip(cov["batch"], cov["province"], cov["n_certified"], cov["n_listed"]) if m >= n}
        safe = out["province"].map(lambda p: all((b, p) in ok for b in batches))
    status = pd.Series("control", index=out.index)
    reason = pd.Series("list complete" if complete else "province lists complete for every batch", index=out.index)
    status[~safe.to_numpy()] = "dropped" if policy == "drop" else "warn"
    reason[~safe.to_numpy()] = "list incomplete: the county may hold an unlisted certified cluster"
    status[treated] = "treated"
    reason[treated] = "listed cluster"
    return out.assign(status=status.to_numpy(), reason=reason.to_numpy())


def for_assignment(clusters: pd.DataFrame) -> pd.DataFrame:
    """The list in the shape ``analysis.panel.assign_clusters`` takes: ``cluster_id``,
    ``county_code`` and ``industry_code`` (int), ``batch``, ``announced`` (the date the final
    list was made public). Rows without a county code or a manufacturing code cannot be placed
    in a county x industry cell and are left out.

    Examples
    --------
    >>> cl = pd.DataFrame({"cluster_id": ["a", "b"], "county_code": ["360703", None], "industry_cic2": ["21", "35"],
    ...                    "batch": [2023, 2022], "public_date": ["2023-10-18", "2023-01-11"]})
    >>> for_assignment(cl).values.tolist()
    [['a', 360703, 21, 2023, Timestamp('2023-10-18 00:00:00')]]
    """
    ok = clusters["county_code"].notna() & clusters["industry_cic2"].notna()
    c = clusters.loc[ok]
    return pd.DataFrame(
        {
            "cluster_id": c["cluster_id"].astype(str).to_numpy(),
            "county_code": pd.to_numeric(c["county_code"]).astype("int64").to_numpy(),
            "industry_code": pd.to_numeric(c["industry_cic2"]).astype("int64").to_numpy(),
            "batch": pd.to_numeric(c["batch"]).astype("int64").to_numpy(),
            "announced": pd.to_datetime(c["public_date"]).to_numpy(),
        }
    )
