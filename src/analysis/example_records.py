"""The synthetic world exported as the raw records the linkage reads: a firm file with names,
CNIPA-style patent application records and pollution records in mixed units.

The world (:mod:`analysis.simulate`) has firm ids but no names, so names are made here,
deterministically from the ids: a place name per county, a brand (the firm id written in base 60
with syllables, so brands are unique), an industry word and a legal form. Applications are one
row per patent of the world's firm-year counts, with

- name variants that normalise to the same key (有限责任公司 / 股份有限公司 / (集团), spaces,
  full-width characters, ``Co., Ltd.``);
- former names: some firms were renamed, and their earlier applications carry the old name;
- co-applications: pairs of panel firms' applications of the same type and year merged into one
  record, and non-panel co-applicants (universities, persons, firms outside the panel);
- applications of applicants outside the panel;
- homonyms: pairs of firms in *different* counties that share a name stem (the address's county
  resolves them) and, deliberately ambiguous, pairs in the *same* county (nothing resolves them).

Linking the records back must reproduce the world's counts of every firm except the same-county
homonyms, whose applications the linkage must list as ambiguous (``tests/test_linkage.py``).

Examples
--------
>>> from analysis.simulate import simulate_world
>>> world = simulate_world({"world": {"n_firms": 300, "n_counties": 20}})
>>> rec = example_records(world, seed=1)
>>> sorted(rec.firms.columns)[:4]
['county_code', 'county_name', 'firm_id', 'firm_name']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.domain import PATENT_TYPES, POLLUTANTS
from analysis.simulate import World

__all__ = ["ExampleRecords", "example_records", "firm_names", "place_names"]

# three disjoint syllable sets: current brands, former brands, applicants outside the panel
_BRAND = list("华星远达新宏泰恒瑞丰盛安兴隆昌鑫源金鼎顺通宇鸿嘉力美创汇联信诚博凯德利旭升腾飞翔龙凤盈众康福佳豪锦程广茂益冠智")
_FORMER = list("东方明光荣耀海天山川云霞春秋江河湖洋松柏竹梅兰菊桂樱晨曦皓月朗清和雅韵宁静致")
_OUTSIDE = list("甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥")
_PLACE = list("平阳安城江山河宁武清水南北东西中新长永丰盛兴德")
_INDUSTRY_WORD = {
    13: "农产", 14: "食品", 15: "酒业", 16: "烟草", 17: "纺织", 18: "服饰", 19: "皮革", 20: "木业", 21: "家具",
    22: "纸业", 23: "印刷", 24: "文体", 25: "石化", 26: "化工", 27: "制药", 28: "化纤", 29: "橡塑", 30: "建材",
    31: "钢铁", 32: "有色", 33: "五金", 34: "机械", 35: "装备", 36: "汽车", 37: "交通", 38: "电气", 39: "电子",
    40: "仪器", 41: "制品", 42: "再生", 43: "维修",
}  # fmt: skip
_SURNAME = list("王李张刘陈杨黄赵吴周")
_GIVEN = list("伟芳娜敏静丽强磊军洋")
_UNITS = {"kg": 1e-3, "t": 1.0, "万吨": 1e4}


def _encode(n: np.ndarray, alphabet: list[str], width: int) -> pd.Series:
    """Write non-negative integers in base len(alphabet) with ``width`` syllables (bijective)."""
    a = np.asarray(alphabet, dtype=object)
    base = len(a)
    out = pd.Series([""] * len(n), dtype=object)
    n = np.asarray(n, dtype=np.int64).copy()
    for _ in range(width):
        out = a[n % base] + out
        n //= base
    return out.astype("string")


def place_names(county_code: np.ndarray) -> pd.Series:
    """A unique two-to-three-syllable place name per county code (deterministic).

    Examples
    --------
    >>> place_names(np.array([110101, 110102, 110101])).tolist()
    ['平平平', '平平阳', '平平平']
    """
    codes, uniq = pd.factorize(pd.Series(county_code), sort=True)
    width = max(3, int(np.ceil(np.log(max(len(uniq), 2)) / np.log(len(_PLACE)))))
    names = _encode(np.arange(len(uniq)), _PLACE, width)
    return pd.Series(names.to_numpy()[codes], dtype="string")


def firm_names(firm_id: np.ndarray, county_code: np.ndarray, industry_code: np.ndarray, *, former: bool = False) -> pd.Series:
    """Deterministic firm-name stems: place + brand (firm id in base-60 syllables) + industry word.

    Stems are unique across firm ids; ``former=True`` uses a disjoint syllable set (a firm's
    name before a rename), so former and current stems never collide.

    Examples
    --------
    >>> firm_names(np.array([100001, 100002]), np.array([1, 1]), np.array([39, 26])).tolist()
    ['平平平华华华电子', '平平平华华星化工']
    """
    alphabet = _FORMER if former else _BRAND
    fid = np.asarray(firm_id, dtype=np.int64)
    off = fid - fid.min() if len(fid) else fid
    width = max(3, int(np.ceil(np.log(max(int(off.max(initial=0)) + 1, 2)) / np.log(len(alphabet)))))
    brand = _encode(off, alphabet, width)
    ind = pd.Series(np.asarray(industry_code)).map(_INDUSTRY_WORD).fillna("实业").astype("string").to_numpy()
    return place_names(county_code).str.cat(brand.to_numpy()).str.cat(ind)


def _variant(stem: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Name variants that all normalise to ``stem``'s key."""
    k = rng.integers(0, 8, len(stem))
    forms = np.array(["有限公司", "有限责任公司", "股份有限公司", "(集团)有限公司", "有限公司", "集团股份有限公司", "有限公司", "有限公司"], dtype=object)
    s = stem.to_numpy(dtype=object) + forms[k]
    s = np.where(k == 4, [x[:2] + " " + x[2:] for x in s], s)  # a space
    s = np.where(k == 6, [x.replace("(", "（").replace(")", "）") + "　" for x in s], s)  # full-width
    s = np.where(k == 7, [x.replace("有限公司", " Co., Ltd.") for x in s], s)
    return pd.Series(s, index=stem.index, dtype="string")


@dataclass
class ExampleRecords:
    """The world as raw records, and what linking them back must give.

    Attributes
    ----------
    firms : firm file (``firm_id, firm_name, former_names, county_code, county_name, industry_code``)
    applications : patent application records (``app_no, filing_date, patent_type, applicants, address, ipc``)
    emissions : pollution records (``firm_id`` for some, ``firm_name, county_code, year, so2, cod, co2, unit``)
    patents_truth : the world's ``firm_id, year, patents_*`` (firm-years with any patent)
    emissions_truth : the world's ``firm_id, year`` and pollutants (tonnes) of reporting firm-years
    ambiguous_firms : firms whose name stem another firm of the same county shares
    resolved_homonyms : firms whose stem a firm of another county shares (county resolves them)
    renamed_firms : firms with a former name used by their earlier applications
    """

    firms: pd.DataFrame
    applications: pd.DataFrame
    emissions: pd.DataFrame
    patents_truth: pd.DataFrame
    emissions_truth: pd.DataFrame
    ambiguous_firms: frozenset
    resolved_homonyms: frozenset
    renamed_firms: frozenset


def _firm_file(panel: pd.DataFrame, rng: np.random.Generator, n_twins: int, renamed_share: float) -> tuple[pd.DataFrame, frozenset, frozenset, pd.Series]:
    firms = panel.groupby("firm_id", as_index=False)[["county_code", "industry_code"]].first().sort_values("firm_id").reset_index(drop=True)
    firms["stem"] = firm_names(firms["firm_id"].to_numpy(), firms["county_code"].to_numpy(), firms["industry_code"].to_numpy())
    firms["county_name"] = place_names(firms["county_code"].to_numpy()) + "县"
    # same-county homonyms (deliberately ambiguous) and different-county homonyms (resolved by county)
    by_county = firms.groupby("county_code")["firm_id"].apply(list)
    multi = [v for v in by_county if len(v) >= 2]
    pick = rng.choice(len(multi), size=min(n_twins, len(multi)), replace=False) if multi else []
    ambiguous = set()
    idx = firms.set_index("firm_id")
    for i in pick:
        a, b = rng.choice(multi[i], size=2, replace=False)
        idx.loc[b, "stem"] = idx.loc[a, "stem"]
        ambiguous |= {int(a), int(b)}
    free = idx.index[~idx.index.isin(list(ambiguous))].to_numpy()
    resolved = set()
    for _ in range(n_twins):
        a, b = rng.choice(free, size=2, replace=False)
        if idx.loc[a, "county_code"] == idx.loc[b, "county_code"] or {int(a), int(b)} & resolved:
            continue
        idx.loc[b, "stem"] = idx.loc[a, "stem"]
        resolved |= {int(a), int(b)}
    firms = idx.reset_index()
    forms = np.where(firms["firm_id"].isin(list(ambiguous)) & (firms.groupby("stem").cumcount() > 0), "股份有限公司", "有限公司")
    firms["firm_name"] = firms["stem"] + forms
    # renamed firms: a former name (disjoint syllables) and the year of the change
    clean = ~firms["firm_id"].isin(list(ambiguous | resolved))
    renamed = clean & (rng.random(len(firms)) < renamed_share)
    old = firm_names(firms["firm_id"].to_numpy(), firms["county_code"].to_numpy(), firms["industry_code"].to_numpy(), former=True)
    firms["former_names"] = pd.array(np.where(renamed, (old + "有限公司").to_numpy(dtype=object), None), dtype="string")
    years = np.sort(panel["year"].unique())
    rename_year = pd.Series(np.where(renamed, rng.choice(years[1:], size=len(firms)), 0), index=firms["firm_id"].to_numpy())
    firms["former_stem"] = old.where(renamed)
    return firms, frozenset(ambiguous), frozenset(resolved), rename_year


def example_records(world: World, *, seed: int = 0, n_twins: int = 5, renamed_share: float = 0.05, co_share: float = 0.05, n_outside: int = 200) -> ExampleRecords:
    """Export the world's patents and emissions as raw records (see the module docstring).

    Parameters
    ----------
    world : analysis.simulate.World
    seed : int
        Seed of the export's own draws (names, variants, units, dates).
    n_twins : int
        Pairs of same-county homonyms (ambiguous) and of different-county homonyms (resolvable).
    renamed_share : float
        Share of firms with a former name.
    co_share : float
        Share of applications merged into co-applications of two panel firms; as many again get
        a co-applicant outside the panel.
    n_outside : int
        Applications of applicants outside the panel.

    Returns
    -------
    ExampleRecords
    """
    for alphabet in (_BRAND, _FORMER, _OUTSIDE, _PLACE):
        assert len(set(alphabet)) == len(alphabet), "syllable sets must not repeat (names would collide)"
    rng = np.random.default_rng(seed)
    panel = world.panel
    firms, ambiguous, resolved, rename_year = _firm_file(panel, rng, n_twins, renamed_share)
    f = firms.set_index("firm_id")

    # one row per patent of the world's counts
    cols = [f"patents_{t}" for t in PATENT_TYPES]
    pt = panel.loc[panel[cols].sum(axis=1) > 0, ["firm_id", "year", *cols]].reset_index(drop=True)
    long = pt.melt(id_vars=["firm_id", "year"], value_vars=cols, var_name="type", value_name="n")
    long = long[long["n"] > 0]
    rows = long.loc[long.index.repeat(long["n"].astype(int))].reset_index(drop=True)
    rows["patent_type"] = rows["type"].str.replace("patents_", "", regex=False)
    rows = rows.drop(columns=["type", "n"]).sample(frac=1.0, random_state=rng.integers(2**31)).reset_index(drop=True)
    fid = rows["firm_id"].to_numpy()
    use_old = rows["year"].to_numpy() < rename_year.reindex(fid).to_numpy()
    stem = pd.Series(np.where(use_old, f.loc[fid, "former_stem"].to_numpy(dtype=object), f.loc[fid, "stem"].to_numpy(dtype=object)), dtype="string")
    rows["applicants"] = _variant(stem, rng)
    # ambiguous firms' legal forms are kept as in the firm file half the time (still ambiguous)
    rows["address"] = (f.loc[fid, "county_name"].to_numpy(dtype=object) + "工业园" + (rng.integers(1, 300, len(rows))).astype(str) + "号")

    # co-applications of two panel firms: merge pairs of same type and year (not homonyms)
    special = np.isin(fid, list(ambiguous | resolved))
    cand = rows.index[~special & (rng.random(len(rows)) < 2 * co_share)]
    c = rows.loc[cand].copy()
    c["k"] = c.groupby(["year", "patent_type"]).cumcount()
    first, second = c[c["k"] % 2 == 0], c[c["k"] % 2 == 1]
    pairs = first.assign(k=first["k"] + 1).merge(second.reset_index()[["index", "year", "patent_type", "k", "firm_id", "applicants"]], on=["year", "patent_type", "k"], suffixes=("", "_2"))
    pairs = pairs[pairs["firm_id"] != pairs["firm_id_2"]]
    first_idx = c.index[c["k"] % 2 == 0][np.isin(c.loc[c["k"] % 2 == 0, "k"].to_numpy() + 1, pairs["k"].to_numpy())]
    lookup = pairs.set_index(["year", "patent_type", "k"])
    for i in first_idx:
        key = (rows.at[i, "year"], rows.at[i, "patent_type"], int(c.at[i, "k"]) + 1)
        if key in lookup.index:
            p = lookup.loc[key]
            rows.at[i, "applicants"] = rows.at[i, "applicants"] + ";" + p["applicants_2"]
            rows.at[int(p["index"]), "applicants"] = pd.NA  # merged away
    rows = rows[rows["applicants"].notna()].reset_index(drop=True)
    # co-applicants outside the panel: universities, persons, outside firms
    outside = _outside_names(rng, max(n_outside, 20))
    extra = rng.random(len(rows)) < co_share
    rows.loc[extra, "applicants"] = rows.loc[extra, "applicants"] + "; " + rng.choice(outside, size=int(extra.sum()))
    # applications of applicants outside the panel
    years = np.sort(panel["year"].unique())
    out = pd.DataFrame(
        {
            "firm_id": 0,
            "year": rng.choice(years, n_outside),
            "patent_type": rng.choice(list(PATENT_TYPES), n_outside),
            "applicants": rng.choice(outside, n_outside),
            "address": "外省某市",
        }
    )
    apps = pd.concat([rows, out], ignore_index=True)
    typecode = apps["patent_type"].map({"invention": "1", "utility": "2", "design": "3"})
    serial = pd.Series(np.arange(len(apps)) + 1).astype(str).str.zfill(7)
    apps["app_no"] = "CN" + apps["year"].astype(str) + typecode + serial + "." + (np.arange(len(apps)) % 10).astype(str)
    day = rng.integers(0, 365, len(apps))
    apps["filing_date"] = (pd.to_datetime(apps["year"].astype(str) + "-01-01") + pd.to_timedelta(np.minimum(day, 364), unit="D")).dt.strftime("%Y-%m-%d")
    apps["patent_type"] = apps["patent_type"].map({"invention": "发明", "utility": "实用新型", "design": "外观设计"})
    apps["ipc"] = np.where(apps["patent_type"] == "外观设计", "", "H01M 10/00")
    apps = apps[["app_no", "filing_date", "patent_type", "applicants", "address", "ipc"]]

    truth = pt.astype({c: float for c in cols}).sort_values(["firm_id", "year"]).reset_index(drop=True)
    em, em_truth = _emission_records(panel, f, rng)
    firm_file = firms[["firm_id", "firm_name", "former_names", "county_code", "county_name", "industry_code"]]
    renamed = frozenset(int(x) for x in firms.loc[firms["former_names"].notna(), "firm_id"])
    return ExampleRecords(firm_file, apps, em, truth, em_truth, ambiguous, resolved, renamed)


def _outside_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Applicants outside the panel: universities, institutes, persons and outside firms."""
    stem = _encode(np.arange(n), _OUTSIDE, 3).to_numpy(dtype=object)
    kind = np.arange(n) % 4
    person = np.array([_SURNAME[i % 10] + _GIVEN[(i // 10) % 10] for i in range(n)], dtype=object)
    return np.where(kind == 0, stem + "大学", np.where(kind == 1, stem + "研究所", np.where(kind == 2, person, stem + "贸易有限公司")))


def _emission_records(panel: pd.DataFrame, f: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pollution records of reporting firm-years, amounts in kg, tonnes or 万吨 (unit column);
    a firm id on about half of them, names in variants otherwise."""
    rep = panel.loc[panel["reports_emissions"], ["firm_id", "year", *POLLUTANTS]].reset_index(drop=True)
    unit = rng.choice(list(_UNITS), len(rep))
    factor = pd.Series(unit).map(_UNITS).to_numpy()
    rec = pd.DataFrame({"firm_id": pd.array(np.where(rng.random(len(rep)) < 0.5, rep["firm_id"], pd.NA), dtype="Int64")})
    fid = rep["firm_id"].to_numpy()
    rec["firm_name"] = _variant(pd.Series(f.loc[fid, "stem"].to_numpy(dtype=object), dtype="string"), rng).to_numpy()
    rec["county_code"] = f.loc[fid, "county_code"].to_numpy()
    rec["year"] = rep["year"].to_numpy()
    for pol in POLLUTANTS:
        rec[pol] = rep[pol].to_numpy() / factor
    rec["unit"] = unit
    return rec, rep
