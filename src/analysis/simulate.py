"""The synthetic world: firms, clusters, certification, and both potential outcomes.

Real firm data (the Annual Survey of Industrial Firms, CNIPA patents, the environmental
statistics survey) is confidential, so the pipeline's default input is a simulated world whose
true effects are known. :func:`simulate_world` returns a :class:`World` with

- ``panel``: what a researcher would see, one row per firm-year (columns in ``data/README.md``);
- ``truth``: the true ATT of certification by outcome, with the same aggregations as
  ``att_gt(...).aggregate`` (``group_time``, ``event``, ``group``, ``calendar``, ``simple``);
- ``potential``: both potential outcomes ``<outcome>_0`` / ``<outcome>_1`` for every firm-year of
  a certified cluster's member firms (the rows ``truth`` averages over);
- ``latent``: the true log TFP (``omega``) of every panel row;
- ``clusters``: the certified county x industry cells with batch, announcement date and cohort.

How the world works (every number is a parameter of :data:`DEFAULTS`)
------------------------------------------------------------------
Geography and industries
    31 provinces (east / central / west, NBS classification) with firm shares close to the
    distribution of above-scale industrial firms (``data/external/provinces.csv``); counties
    inside provinces; 2-digit manufacturing industries CIC 13-43
    (``data/external/industries_cic2.csv``). Firms sit in county x industry cells whose sizes
    are log-normal (heavy tailed).
Production (Ackerberg, Caves and Frazer 2015 timing)
    log value added ``y = b0 + b_l l + b_k k + omega + e``; ``omega = a_industry + g t + u``
    with ``u`` AR(1) (``rho``, stationary sd ``sd_omega``); labor chosen at ``t - 1/2``, closing
    a share ``labor_adjustment`` of the gap to the static optimum given productivity then and a
    firm wage shock (so labor is a dynamic input, as ACF allow); capital from
    last year's investment, which rises with productivity and a firm-specific investment
    propensity (the log-normal adjustment-cost heterogeneity of ACF); materials are Leontief
    in value added (so they are a valid proxy, and LP's first stage cannot identify ``b_l``,
    as ACF show); gross output is value added plus materials.
Entry and exit
    Firms exit when productivity and capital are low (a fixed annual hazard among the least
    productive), and cells receive entrants every year at a cell-specific rate, so the panel
    is unbalanced and some cells grow faster than others.
Certification
    Four national batches (announced 2023-01, 2023-10, 2024-09, 2025-11). Each batch picks
    ``per_batch`` cells, at most ``max_per_province`` per province, among large cells (top
    ``eligible_share`` by output) with an SME output share of at least ``min_sme_share`` and
    output growth over the ``growth_years`` before the announcement above its
    ``min_growth_quantile``, ranked on output level (and on growth, with ``weight_growth``)
    plus noise: selection on observables, as the official criteria. Ranking on recent growth
    selects cells on transitory shocks and so bends pre-trends (an Ashenfelter dip in reverse);
    it is off by default and available as a scenario. The first treated year is the announcement year,
    or the next one when the notice comes in or after month ``late_month``.
Effects
    On members of certified cells (every firm of the cell, entrants included) the effect at event
    time ``e >= 0`` is ``(base + slope * e) * cohort_multiplier[cohort] * size_multiplier``
    (SME at baseline or large): on log TFP (which then moves labor, capital, output, patents
    and emissions), on the log patent rate, and on log emission intensities. Survival does not
    depend on treatment (a simplification that keeps the ATT on observed firm-years well
    defined).
Scenarios
    ``anticipation`` (effects start ``anticipation`` years early at ``anticipation_share`` of
    the base effect), ``pretrend`` (ever-certified cells have an extra TFP trend of this size a
    year, and the opposite trend in emission intensities: a violated parallel trend),
    ``spillover`` (non-member firms in a certified county receive this share of the effect),
    ``no_never_treated`` (keep only firms of cells certified within the data years).

Randomness: one ``numpy.random.SeedSequence`` from ``seed`` spawns an independent stream per
component; the same seed gives the same bytes of ``panel.parquet``.

Examples
--------
>>> world = simulate_world({"world": {"n_firms": 1500, "certification": {"per_batch": 4}}}, seed=1)
>>> world.panel[["firm_id", "year", "cohort"]].dtypes.tolist()
[dtype('int64'), dtype('int64'), dtype('int64')]
>>> sorted(world.truth["aggregation"].unique())
['calendar', 'event', 'group', 'group_time', 'simple']
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.config import EXTERNAL, deep_merge
from analysis.domain import ANNOUNCEMENTS, PATENT_TYPES, POLLUTANTS, cohort_from_date

__all__ = ["DEFAULTS", "OUTCOMES", "World", "simulate_world", "world_params", "cohort_from_date"]

DEFAULTS: dict[str, Any] = {
    "years": [2012, 2025],
    "n_firms": 20_000,  # firms alive in the first year
    "n_counties": 400,
    "industries_per_county": 6,
    "cell_size_sd": 1.1,  # sd of log firms per cell (heavy tail)
    "production": {
        "b_l": 0.6,
        "b_k": 0.4,
        "b0": 2.65,  # log VA/L around 100 thousand yuan per worker at the median
        "rho": 0.7,
        "sd_omega": 0.3,
        "sd_noise": 0.1,
        "tfp_growth": 0.02,
        "sd_industry_tfp": 0.1,
        "depreciation": 0.2,
        "invest_omega": 0.6,  # elasticity of investment to productivity
        "invest_capital": 0.6,
        "invest_const": 2.35,
        "sd_invest_propensity": 0.3,  # firm heterogeneity in investment (ACF: adjustment costs)
        "sd_invest_noise": 0.2,
        "wage_log_level": {"east": 4.3, "central": 4.05, "west": 4.0},
        "wage_growth": 0.03,
        "sd_wage_cell": 0.1,
        "sd_wage_shock": 0.1,
        "rho_wage": 0.5,
        "labor_adjustment": 0.6,  # share of the gap to the optimal labor closed each year
        "labor_error_sd": 0.0,
        "materials_error_sd": 0.0,
        "materials_ratio": [2.0, 3.5],
    },
    "entry": {"rate": 0.08, "rate_sd": 0.03, "capital_gap": 0.2, "tfp_gap": 0.0},
    "exit": {"rate": 0.06, "capital_weight": 0.1, "sd_noise": 0.15},
    "ownership": {"soe": 0.04, "foreign": 0.12},
    "sme": {"max_employment": 1000, "max_output": 400_000},  # 2011 standard; output in thousand yuan
    "certification": {
        "announcements": dict(ANNOUNCEMENTS),  # analysis.domain: the real batches' announcement dates
        "per_batch": 20,
        "max_per_province": 8,
        "late_month": 7,
        "eligible_share": 0.25,
        "min_cell_firms": 8,
        "min_sme_share": 0.7,
        "growth_years": 3,
        "min_growth_quantile": 0.25,  # growth criterion: drop the slowest-growing candidates
        "weight_level": 1.0,
        "weight_growth": 0.0,  # > 0 also ranks on recent growth (selection on transitory shocks)
        "selection_noise": 0.5,
    },
    "effects": {
        "tfp": {"base": 0.05, "slope": 0.02},
        "patents": {"base": 0.15, "slope": 0.05},
        "so2": {"base": -0.08, "slope": -0.03},
        "cod": {"base": -0.05, "slope": -0.02},
        "co2": {"base": -0.03, "slope": -0.01},
        "cohort_multiplier": {2023: 1.2, 2024: 1.0, 2025: 0.8},
        "sme_multiplier": 1.2,
        "large_multiplier": 0.5,
    },
    "patents": {
        "intercept": -3.9,
        "omega": 1.0,
        "labor": 0.5,
        "sd_innovativeness": 1.3,
        "trend": 0.06,
        "shares": {"invention": 0.3, "utility": 0.5, "design": 0.2},
    },
    "emissions": {
        "report_share": 0.3,  # share of firms in the pollution survey (key polluters)
        "polluter_odds": 6.0,  # odds ratio of reporting for key-polluter industries
        "size_slope": 0.8,  # log-odds of reporting per log point of output
        "log_intensity": {"so2": -8.8, "cod": -10.3, "co2": -3.0},  # log tonnes per thousand yuan
        "trend": {"so2": -0.10, "cod": -0.06, "co2": -0.03},
        "sd_firm": 0.8,
        "sd_noise": 0.2,
    },
    "scenario": {
        "anticipation": 0,
        "anticipation_share": 0.5,
        "pretrend": 0.0,
        "spillover": 0.0,
        "no_never_treated": False,
    },
}

#: Outcomes whose potential outcomes and true effects the world records.
OUTCOMES: tuple[str, ...] = (
    "tfp",
    "log_value_added",
    "log_output",
    "log_labor",
    "log_capital",
    "log_labor_productivity",
    "patents_total",
    "patents_invention",
    "any_patent",
    "log1p_patents",
    "log_so2",
    "log_cod",
    "log_co2",
    "log_so2_intensity",
    "log_cod_intensity",
    "log_co2_intensity",
)


@dataclass
class World:
    """A simulated world: the observed panel and everything needed to know the truth."""

    panel: pd.DataFrame
    truth: pd.DataFrame
    potential: pd.DataFrame
    latent: pd.DataFrame
    clusters: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        p = self.panel
        return (
            f"World: {p['firm_id'].nunique():,} firms, {len(p):,} firm-years {p['year'].min()}-{p['year'].max()}, "
            f"{len(self.clusters)} certified clusters, {int((p['cohort'] > 0).sum()):,} member firm-years in cohorts "
            f"{sorted(int(c) for c in p.loc[p['cohort'] > 0, 'cohort'].unique())}"
        )


def world_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full world parameters: ``params["world"]`` deep-merged over :data:`DEFAULTS`.

    ``params`` is a parameter set as loaded by :func:`analysis.config.load_params`. Unknown keys raise :class:`analysis.config.ParameterError`.
    """
    section = (params or {}).get("world") or {}
    return deep_merge(DEFAULTS, section, path="world")


# ----------------------------------------------------------------------------------------
# geography
# ----------------------------------------------------------------------------------------
def _real_county_codes(vintage: int = 2023) -> dict[int, list[int]]:
    """County-level GB/T 2260 codes in use in ``vintage``, by province (``data/external/county_codes_gbt2260.csv``)."""
    t = pd.read_csv(EXTERNAL / "county_codes_gbt2260.csv", dtype=str, keep_default_na=False)
    last = pd.to_numeric(t["last_year"].replace("", "9999"))
    t = t[(t["first_year"].astype(int) <= vintage) & (last > vintage)]
    codes = sorted(set(t["county_code"].astype(int)))
    out: dict[int, list[int]] = {}
    for c in codes:
        out.setdefault(c // 10_000, []).append(c)
    return out


def _county_codes(real: list[int], province: int, n: int) -> list[int]:
    """``n`` increasing county codes of a province: real GB/T 2260 codes spread evenly over the
    province's list (so the world's counties are real counties and a user's cluster list can use
    them); a world with more counties than the province has continues with codes ``pp98xx``,
    which GB/T 2260 does not use."""
    if n <= len(real):
        pick = np.unique(np.round(np.linspace(0, len(real) - 1, n)).astype(int)) if n > 1 else np.array([0])
        return [real[i] for i in pick]
    if n - len(real) > 200:
        raise ValueError(f"world.n_counties asks for {n} counties in province {province}, which has {len(real)}; at most 200 more can be made up")
    return list(real) + [province * 10_000 + 9800 + j for j in range(n - len(real))]


def _geography(p: dict, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counties (with province and region) and the county x industry cells with target sizes."""
    provinces = pd.read_csv(EXTERNAL / "provinces.csv")
    industries = pd.read_csv(EXTERNAL / "industries_cic2.csv")
    share = provinces["firm_share"] / provinces["firm_share"].sum()
    n_counties = np.maximum(2, np.round(p["n_counties"] * share**0.7 / (share**0.7).sum())).astype(int)
    county_rows = []
    real = _real_county_codes()
    for (_, prov), n in zip(provinces.iterrows(), n_counties):
        for code in _county_codes(real.get(int(prov["province_code"]), []), int(prov["province_code"]), n):
            county_rows.append((code, prov["province_code"], prov["province_en"], prov["region"], share.loc[_] / n))
    counties = pd.DataFrame(county_rows, columns=["county_code", "province_code", "province", "region", "weight"])
    ind_share = (industries["firm_share"] / industries["firm_share"].sum()).to_numpy()
    cells = []
    k = min(p["industries_per_county"], len(industries))
    for row in counties.itertuples():
        chosen = rng.choice(industries["industry_code"].to_numpy(), size=k, replace=False, p=ind_share)
        size = rng.lognormal(0.0, p["cell_size_sd"], size=k)
        size *= ind_share[np.searchsorted(industries["industry_code"].to_numpy(), chosen)] ** 0.5
        for ind, s in zip(chosen, size):
            cells.append((row.county_code, int(ind), row.weight * s))
    cells = pd.DataFrame(cells, columns=["county_code", "industry_code", "weight"])
    cells["n0"] = rng.multinomial(p["n_firms"], cells["weight"] / cells["weight"].sum())
    cells = cells.merge(counties.drop(columns="weight"), on="county_code")
    cells["cell_id"] = cells["county_code"].astype(np.int64) * 100 + cells["industry_code"]
    cells = cells.sort_values("cell_id").reset_index(drop=True)
    return counties, cells


# ----------------------------------------------------------------------------------------
# population and dynamics
# ----------------------------------------------------------------------------------------
def _steady_capital(pp: dict, psi: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Log capital where investment just replaces depreciation, given productivity."""
    return (pp["invest_const"] + psi + pp["invest_omega"] * omega - np.log(pp["depreciation"])) / (1 - pp["invest_capital"])


def _draw_population(p: dict, cells: pd.DataFrame, ss: np.random.SeedSequence) -> dict[str, Any]:
    """Simulate entry, exit and the untreated production states; draw every shock once.

    Returns the firm attributes, the (T x N) alive matrix, and all shocks, so that production
    can be recomputed along the same population with an added productivity shift
    (:func:`_production`).
    """
    pp, T = p["production"], p["years"][1] - p["years"][0] + 1
    r_pop, r_firm, r_shock = (np.random.default_rng(s) for s in ss.spawn(3))
    n0 = int(cells["n0"].sum())
    cell_rate = np.clip(p["entry"]["rate"] + p["entry"]["rate_sd"] * r_pop.standard_normal(len(cells)), 0.01, None)
    n_max = int(n0 * (1 + 1.6 * (cell_rate.mean() + 0.01) * T)) + 1000
    # firm-level attributes for every slot
    firm = {
        "cell": np.full(n_max, -1),
        "birth": np.full(n_max, 10_000),
        "psi": pp["sd_invest_propensity"] * r_firm.standard_normal(n_max),
        "zeta": p["patents"]["sd_innovativeness"] * r_firm.standard_normal(n_max),
        "age0": np.clip(np.round(r_firm.lognormal(np.log(9), 0.6, n_max)), 1, 60),
        "own_u": r_firm.random(n_max),
        "dirt": r_firm.standard_normal((n_max, 3)),
        "report_u": r_firm.random(n_max),
    }
    # shocks for every slot and year
    sd = pp["sd_omega"]
    shock = {
        "a": sd * np.sqrt(1 - pp["rho"]) * r_shock.standard_normal((T, n_max)),
        "b": sd * np.sqrt(1 - pp["rho"]) * r_shock.standard_normal((T, n_max)),
        "eps": pp["sd_noise"] * r_shock.standard_normal((T, n_max)),
        "wage": pp["sd_wage_shock"] * r_shock.standard_normal((T, n_max)),
        "invest": pp["sd_invest_noise"] * r_shock.standard_normal((T, n_max)),
        "labor_err": pp["labor_error_sd"] * r_shock.standard_normal((T, n_max)),
        "mat_err": r_shock.standard_normal((T, n_max)),
        "exit": p["exit"]["sd_noise"] * r_shock.standard_normal((T, n_max)),
        "k0": 0.3 * r_shock.standard_normal(n_max),
        "u0": sd * r_shock.standard_normal(n_max),
        "patent_u": r_shock.random((T, n_max, 3)),
        "emis": p["emissions"]["sd_noise"] * r_shock.standard_normal((T, n_max, 3)),
    }
    alive = np.zeros((T, n_max), dtype=bool)
    cell_of = np.repeat(np.arange(len(cells)), cells["n0"].to_numpy())
    firm["cell"][:n0] = cell_of
    firm["birth"][:n0] = 0
    alive[0, :n0] = True
    next_slot = n0
    u_prev = np.full(n_max, np.nan)
    k_prev = np.full(n_max, np.nan)
    cell_terms = _cell_terms(p, cells, r_firm)
    a_ind = lambda idx: cell_terms["a_ind"][firm["cell"][idx]]  # noqa: E731
    rh = np.sqrt(pp["rho"])
    for t in range(T):
        idx = np.flatnonzero(alive[t])
        new = firm["birth"][idx] == t
        # the same recursion as _production with a zero shift (checked by a test)
        u_half = np.where(new, shock["u0"][idx] + (p["entry"]["tfp_gap"] if t > 0 else 0.0), rh * u_prev[idx] + shock["a"][t, idx])
        u = rh * u_half + shock["b"][t, idx]
        gap = p["entry"]["capital_gap"] if t > 0 else 0.0
        k_new = _steady_capital(pp, firm["psi"][idx], a_ind(idx) + pp["tfp_growth"] * t + u_half) - gap + shock["k0"][idx]
        k = np.where(new, k_new, k_prev[idx])
        # exit at the end of the year: the least productive (given capital) leave
        if t < T - 1:
            score = u + p["exit"]["capital_weight"] * (k - np.median(k)) + shock["exit"][t, idx]
            stay = score > np.quantile(score, p["exit"]["rate"])
            alive[t + 1, idx[stay]] = True
            # investment decides next year's capital
            omega = a_ind(idx) + pp["tfp_growth"] * t + u
            inv = np.exp(pp["invest_const"] + firm["psi"][idx] + pp["invest_omega"] * omega + pp["invest_capital"] * k + shock["invest"][t, idx])
            k_prev[idx] = np.log((1 - pp["depreciation"]) * np.exp(k) + inv)
            u_prev[idx] = u
            # entrants of next year, per cell, proportional to the cell's current size
            n_cell = np.bincount(firm["cell"][idx], minlength=len(cells))
            n_new = r_pop.poisson(cell_rate * np.maximum(n_cell, 1))
            total = int(n_new.sum())
            if next_slot + total > n_max:
                raise RuntimeError("entry exceeded the preallocated firm slots; lower entry.rate")
            slots = np.arange(next_slot, next_slot + total)
            firm["cell"][slots] = np.repeat(np.arange(len(cells)), n_new)
            firm["birth"][slots] = t + 1
            firm["age0"][slots] = 0
            alive[t + 1, slots] = True
            next_slot += total
    used = next_slot
    firm = {k: v[:used] for k, v in firm.items()}
    shock = {k: (v[:, :used] if v.ndim >= 2 and v.shape[0] == T else v[:used]) for k, v in shock.items()}
    base = {k: v[firm["cell"]] for k, v in cell_terms.items()}
    return {"firm": firm, "shock": shock, "alive": alive[:, :used], "base": base, "T": T, "cell_rate": cell_rate}


def _cell_terms(p: dict, cells: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-cell terms: industry TFP level, log materials-to-value-added ratio, log wage level."""
    pp = p["production"]
    inds = np.arange(13, 44)
    a_by_ind = dict(zip(inds, pp["sd_industry_tfp"] * rng.standard_normal(len(inds))))
    ratio_by_ind = dict(zip(inds, rng.uniform(*pp["materials_ratio"], len(inds))))
    wage_cell = np.array([pp["wage_log_level"][r] for r in cells["region"]]) + pp["sd_wage_cell"] * rng.standard_normal(len(cells))
    ind = cells["industry_code"].to_numpy()
    return {
        "a_ind": np.array([a_by_ind[i] for i in ind]),
        "log_ratio": np.log(np.array([ratio_by_ind[i] for i in ind])),
        "wage": wage_cell,
    }


def _production(p: dict, pop: dict, shift: np.ndarray) -> dict[str, np.ndarray]:
    """Production states along the population of ``pop`` with productivity raised by ``shift``.

    ``shift`` is a (T x N) array added to log TFP (certification effects, pre-trends). With a
    zero shift this reproduces the untreated world used to draw the population.
    """
    pp, T, alive, sh, base, firm = p["production"], pop["T"], pop["alive"], pop["shock"], pop["base"], pop["firm"]
    n = alive.shape[1]
    out = {k: np.full((T, n), np.nan) for k in ("omega", "k", "l", "y", "m", "inv", "wage")}
    u_prev = np.full(n, np.nan)
    k_prev = np.full(n, np.nan)
    w_prev = np.zeros(n)
    l_prev = np.full(n, np.nan)
    rh = np.sqrt(pp["rho"])
    for t in range(T):
        idx = np.flatnonzero(alive[t])
        new = firm["birth"][idx] == t
        u_half = np.where(new, sh["u0"][idx] + (p["entry"]["tfp_gap"] if t > 0 else 0.0), rh * u_prev[idx] + sh["a"][t, idx])
        u = rh * u_half + sh["b"][t, idx]
        omega_half = base["a_ind"][idx] + pp["tfp_growth"] * (t - 0.5) + u_half + shift[t, idx]
        omega = base["a_ind"][idx] + pp["tfp_growth"] * t + u + shift[t, idx]
        gap = p["entry"]["capital_gap"] if t > 0 else 0.0
        k_new = _steady_capital(pp, firm["psi"][idx], base["a_ind"][idx] + pp["tfp_growth"] * t + u_half) - gap + sh["k0"][idx]
        k = np.where(new, k_new, k_prev[idx])
        w_shock = pp["rho_wage"] * np.where(new, 0.0, w_prev[idx]) + sh["wage"][t, idx]
        w = base["wage"][idx] + pp["wage_growth"] * t + w_shock
        l_opt = (np.log(pp["b_l"]) + pp["b0"] + pp["b_k"] * k + omega_half - w) / (1 - pp["b_l"])
        l = np.where(new, l_opt, l_prev[idx] + pp["labor_adjustment"] * (l_opt - l_prev[idx])) + sh["labor_err"][t, idx]
        y_det = pp["b0"] + pp["b_l"] * l + pp["b_k"] * k + omega
        m = y_det + base["log_ratio"][idx]
        if pp["materials_error_sd"] > 0:
            m = m + pp["materials_error_sd"] * sh["mat_err"][t, idx]
        inv = np.exp(pp["invest_const"] + firm["psi"][idx] + pp["invest_omega"] * omega + pp["invest_capital"] * k + sh["invest"][t, idx])
        for key, val in (("omega", omega), ("k", k), ("l", l), ("y", y_det + sh["eps"][t, idx]), ("m", m), ("inv", inv), ("wage", w)):
            out[key][t, idx] = val
        k_prev[idx] = np.log((1 - pp["depreciation"]) * np.exp(k) + inv)
        u_prev[idx] = u
        w_prev[idx] = w_shock
        l_prev[idx] = l
    return out


# ----------------------------------------------------------------------------------------
# certification
# ----------------------------------------------------------------------------------------
def _cell_year_stats(p: dict, pop: dict, prod: dict, cells: pd.DataFrame) -> pd.DataFrame:
    """Cell output, firm count and SME output share per year (untreated world)."""
    alive = pop["alive"]
    t_idx, f_idx = np.nonzero(alive)
    output = np.exp(prod["y"][t_idx, f_idx]) + np.exp(prod["m"][t_idx, f_idx])
    sme = (np.exp(prod["l"][t_idx, f_idx]) < p["sme"]["max_employment"]) | (output < p["sme"]["max_output"])
    df = pd.DataFrame({"t": t_idx, "cell": pop["firm"]["cell"][f_idx], "output": output, "sme_output": output * sme})
    g = df.groupby(["cell", "t"]).agg(output=("output", "sum"), sme_output=("sme_output", "sum"), n=("output", "size")).reset_index()
    g["sme_share"] = g["sme_output"] / g["output"]
    return g


def _certify(p: dict, cells: pd.DataFrame, stats_: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Choose the certified cells batch by batch, as MIIT's criteria would (selection on observables)."""
    c = p["certification"]
    y0, y1 = p["years"]
    chosen = []
    taken: set[int] = set()
    for batch, date in sorted((int(b), d) for b, d in c["announcements"].items()):
        ref = min(batch, y1) - 1 - y0  # last full year before the announcement
        gy = c["growth_years"]
        if ref < gy:
            continue
        now = stats_[stats_["t"] == ref].set_index("cell")
        before = stats_[stats_["t"] == ref - gy].set_index("cell")
        cand = now.join(before["output"].rename("output_before"), how="inner")
        cand = cand[(cand["n"] >= c["min_cell_firms"]) & (cand["sme_share"] >= c["min_sme_share"])]
        cand = cand[~cand.index.isin(taken)]
        cand = cand[cand["output"] >= cand["output"].quantile(1 - c["eligible_share"])]
        if cand.empty:
            continue
        growth = np.log(cand["output"] / cand["output_before"]) / gy
        keep = growth >= growth.quantile(c["min_growth_quantile"])
        cand, growth = cand[keep], growth[keep]
        lvl = np.log(cand["output"])
        z = lambda s: (s - s.mean()) / (s.std(ddof=0) or 1.0)  # noqa: E731
        cand = cand.assign(score=c["weight_level"] * z(lvl) + c["weight_growth"] * z(growth) + c["selection_noise"] * rng.standard_normal(len(cand)))
        cand = cand.join(cells[["province"]], how="left").sort_values("score", ascending=False)
        picked = cand[cand.groupby("province").cumcount() < c["max_per_province"]].head(c["per_batch"])
        taken.update(picked.index)
        for rank, cell in enumerate(picked.index, start=1):
            chosen.append((cell, batch, date, rank))
    out = pd.DataFrame(chosen, columns=["cell", "batch", "announced", "rank"])
    out = out.join(cells, on="cell")
    out["cohort"] = [cohort_from_date(d, c["late_month"]) for d in out["announced"]]
    prov_code = out["county_code"] // 10_000
    out["cluster_id"] = [f"{b}-{pc:02d}-{r:03d}" for b, pc, r in zip(out["batch"], prov_code, out["rank"])]
    return out[["cluster_id", "cell", "cell_id", "batch", "announced", "cohort", "province", "region", "county_code", "industry_code"]]


# ----------------------------------------------------------------------------------------
# effects and outcomes
# ----------------------------------------------------------------------------------------
def _effect_path(p: dict, family: str, cohort: np.ndarray, year: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Effect on the log scale of one family (tfp, patents, so2, ...) for firm-years."""
    e_par, s = p["effects"], p["scenario"]
    eff = p["effects"][family]
    e = year - cohort
    cm = np.array([e_par["cohort_multiplier"].get(int(g), 1.0) for g in cohort]) if cohort.size else np.zeros(0)
    post = (cohort > 0) & (e >= 0)
    antic = (cohort > 0) & (e < 0) & (e >= -s["anticipation"])
    out = np.where(post, eff["base"] + eff["slope"] * e, 0.0)
    out = np.where(antic, s["anticipation_share"] * eff["base"], out)
    return out * cm * mult


def _outcomes(p: dict, pop: dict, prod: dict, t_idx: np.ndarray, f_idx: np.ndarray, pat_shift: np.ndarray, em_shift: np.ndarray) -> dict[str, np.ndarray]:
    """Observable outcomes of firm-years (t_idx, f_idx) under one production path."""
    firm, sh, base = pop["firm"], pop["shock"], pop["base"]
    y, m, l, k = (prod[key][t_idx, f_idx] for key in ("y", "m", "l", "k"))
    omega = prod["omega"][t_idx, f_idx]
    va, mat = np.exp(y), np.exp(m)
    output = va + mat
    pa = p["patents"]
    log_rate = pa["intercept"] + pa["omega"] * (omega - base["a_ind"][f_idx] - p["production"]["tfp_growth"] * t_idx) + pa["labor"] * (l - 5.0)
    log_rate = log_rate + firm["zeta"][f_idx] + pa["trend"] * t_idx + pat_shift
    out = {"omega": omega, "value_added": va, "materials": mat, "output": output, "labor": np.exp(l), "capital": np.exp(k)}
    out["investment"] = prod["inv"][t_idx, f_idx]
    for j, kind in enumerate(PATENT_TYPES):
        lam = np.exp(log_rate) * pa["shares"][kind]
        out[f"patents_{kind}"] = stats.poisson.ppf(sh["patent_u"][t_idx, f_idx, j], lam).astype(np.int64)
    em = p["emissions"]
    ind = pop["cells"]["industry_code"].to_numpy()[firm["cell"][f_idx]]
    rel = pop["intensity_rel"]
    for j, pol in enumerate(POLLUTANTS):
        firm_re = em["sd_firm"] * (0.7 * firm["dirt"][f_idx, 0] + np.sqrt(1 - 0.49) * firm["dirt"][f_idx, j]) if j else em["sd_firm"] * firm["dirt"][f_idx, 0]
        log_int = em["log_intensity"][pol] + np.log(rel[pol][ind]) + firm_re + em["trend"][pol] * t_idx + sh["emis"][t_idx, f_idx, j] + em_shift[pol]
        out[pol] = np.exp(log_int) * output
    return out


def _derived(o: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outcome variables of :data:`OUTCOMES` computed from levels."""
    total = o["patents_invention"] + o["patents_utility"] + o["patents_design"]
    d = {
        "tfp": o["omega"],
        "log_value_added": np.log(o["value_added"]),
        "log_output": np.log(o["output"]),
        "log_labor": np.log(o["labor"]),
        "log_capital": np.log(o["capital"]),
        "log_labor_productivity": np.log(o["value_added"] / o["labor"]),
        "patents_total": total.astype(float),
        "patents_invention": o["patents_invention"].astype(float),
        "any_patent": (total > 0).astype(float),
        "log1p_patents": np.log1p(total),
    }
    for pol in POLLUTANTS:
        d[f"log_{pol}"] = np.log(o[pol])
        d[f"log_{pol}_intensity"] = np.log(o[pol] / o["output"])
    return d


def _truth_table(pot: pd.DataFrame, outcomes: list[str], reporters: pd.Series) -> pd.DataFrame:
    """True ATTs: means of Y(1) - Y(0) over member firm-years, in every aggregation."""
    rows = []
    for outcome in outcomes:
        d = pot[["cohort", "year", "event_time"]].copy()
        d["effect"] = pot[f"{outcome}_1"] - pot[f"{outcome}_0"]
        if outcome.startswith("log_") and any(pol in outcome for pol in POLLUTANTS):
            d = d[reporters.to_numpy()]
        d = d.dropna(subset=["effect"])
        post = d[d["event_time"] >= 0]
        gt = d.groupby(["cohort", "year"])["effect"].agg(["mean", "size"]).reset_index()
        rows.append(gt.assign(aggregation="group_time", event_time=gt["year"] - gt["cohort"]))
        ev = d.groupby("event_time")["effect"].agg(["mean", "size"]).reset_index()
        rows.append(ev.assign(aggregation="event"))
        gr = post.groupby("cohort")["effect"].agg(["mean", "size"]).reset_index()
        rows.append(gr.assign(aggregation="group"))
        ca = post.groupby("year")["effect"].agg(["mean", "size"]).reset_index()
        rows.append(ca.assign(aggregation="calendar"))
        rows.append(pd.DataFrame({"mean": [post["effect"].mean()], "size": [len(post)], "aggregation": "simple"}))
        rows[-5:] = [r.assign(outcome=outcome) for r in rows[-5:]]
    out = pd.concat(rows, ignore_index=True).rename(columns={"mean": "att", "size": "n_obs", "year": "time"})
    cols = ["outcome", "aggregation", "cohort", "time", "event_time", "att", "n_obs"]
    out = out.reindex(columns=cols)
    for c in ("cohort", "time", "event_time"):
        out[c] = out[c].astype("Int64")
    return out


# ----------------------------------------------------------------------------------------
# the world
# ----------------------------------------------------------------------------------------
def simulate_world(params: Mapping[str, Any] | None = None, *, seed: int | None = None) -> World:
    """Simulate the synthetic firm world with known certification effects.

    Parameters
    ----------
    params : mapping, optional
        A parameter set as loaded by :func:`analysis.config.load_params` (its ``world`` section
        and ``seed`` are used), or ``None`` for :data:`DEFAULTS`. Missing keys take defaults;
        unknown keys raise :class:`~analysis.config.ParameterError`.
    seed : int, optional
        Overrides the set's ``seed``.

    Returns
    -------
    World
        ``panel``, ``truth``, ``potential``, ``latent``, ``clusters`` and the resolved ``params``.

    Examples
    --------
    >>> w = simulate_world({"world": {"n_firms": 1500, "certification": {"per_batch": 4}}}, seed=3)
    >>> bool((w.truth.query("aggregation == 'simple' and outcome == 'tfp'")["att"] > 0).all())
    True
    """
    p = world_params(params)
    if seed is None:
        seed = int((params or {}).get("seed", 20230111))
    y0, y1 = p["years"]
    if y1 - y0 < 5:
        raise ValueError(f"world.years {p['years']} must span at least 6 years")
    root = np.random.SeedSequence(seed)
    ss_geo, ss_pop, ss_cert = root.spawn(3)
    counties, cells = _geography(p, np.random.default_rng(ss_geo))
    pop = _draw_population(p, cells, ss_pop)
    pop["cells"] = cells
    inds = pd.read_csv(EXTERNAL / "industries_cic2.csv").set_index("industry_code")
    pop["intensity_rel"] = {pol: inds[f"{pol}_intensity"].reindex(range(0, 100)).fillna(1.0).to_numpy() for pol in POLLUTANTS}
    T, n = pop["alive"].shape
    zero = np.zeros((T, n))
    prod0 = _production(p, pop, zero)

    # certification (on the untreated world's cell statistics)
    cell_stats = _cell_year_stats(p, pop, prod0, cells)
    clusters = _certify(p, cells, cell_stats, np.random.default_rng(ss_cert))
    cell_cohort = np.zeros(len(cells), dtype=np.int64)
    cell_batch = np.zeros(len(cells), dtype=np.int64)
    cell_cohort[clusters["cell"].to_numpy()] = clusters["cohort"].to_numpy()
    cell_batch[clusters["cell"].to_numpy()] = clusters["batch"].to_numpy()
    firm_cell = pop["firm"]["cell"]
    member_cohort = cell_cohort[firm_cell]  # cohort may lie after the last data year
    if p["scenario"]["no_never_treated"]:
        keep = (member_cohort > 0) & (member_cohort <= y1)
        pop["alive"] &= keep[None, :]

    t_idx, f_idx = np.nonzero(pop["alive"])
    year = y0 + t_idx
    g = member_cohort[f_idx]
    # size class at baseline: the year before the cohort (or the firm's first year)
    output0 = np.exp(prod0["y"]) + np.exp(prod0["m"])
    sme0 = (np.exp(prod0["l"]) < p["sme"]["max_employment"]) | (output0 < p["sme"]["max_output"])
    first_t = np.argmax(pop["alive"], axis=0)
    ref_t = np.where(member_cohort > 0, np.clip(member_cohort - 1 - y0, 0, T - 1), first_t)
    ref_t = np.maximum(ref_t, first_t)
    sme_base = sme0[np.minimum(ref_t, T - 1), np.arange(n)]
    mult_firm = np.where(sme_base, p["effects"]["sme_multiplier"], p["effects"]["large_multiplier"])
    mult = mult_firm[f_idx]

    # spillovers: non-members in a certified county take a share of the county's first cohort's effect
    county_of_cell = cells["county_code"].to_numpy()
    county_first = pd.Series(cell_cohort[cell_cohort > 0], index=county_of_cell[cell_cohort > 0]).groupby(level=0).min()
    firm_county_cohort = pd.Series(county_of_cell[firm_cell]).map(county_first).fillna(0).astype(np.int64).to_numpy()
    spill_g = np.where(member_cohort == 0, firm_county_cohort, 0)[f_idx]

    ever = (member_cohort > 0)[f_idx]
    pre_trend = p["scenario"]["pretrend"] * (year - y0) * ever
    families = ("tfp", "patents", *POLLUTANTS)
    eff = {fam: _effect_path(p, fam, g, year, mult) for fam in families}
    spill = {fam: p["scenario"]["spillover"] * _effect_path(p, fam, spill_g, year, mult) for fam in families}

    def grid(v: np.ndarray) -> np.ndarray:
        out = np.zeros((T, n))
        out[t_idx, f_idx] = v
        return out

    prod_0 = _production(p, pop, grid(pre_trend)) if p["scenario"]["pretrend"] else prod0
    prod_1 = _production(p, pop, grid(pre_trend + eff["tfp"] + spill["tfp"]))
    em_pre = {pol: -pre_trend for pol in POLLUTANTS}
    out0 = _outcomes(p, pop, prod_0, t_idx, f_idx, np.zeros(len(t_idx)), em_pre)
    out1 = _outcomes(p, pop, prod_1, t_idx, f_idx, eff["patents"] + spill["patents"], {pol: em_pre[pol] + eff[pol] + spill[pol] for pol in POLLUTANTS})
    obs = out1  # members follow Y(1) (= Y(0) before treatment); others Y(0) or spillover paths

    # firm attributes
    firm = pop["firm"]
    own_p = p["ownership"]
    own = np.where(firm["own_u"] < own_p["soe"], "SOE", np.where(firm["own_u"] < own_p["soe"] + own_p["foreign"], "foreign", "private"))
    founding = np.where(firm["birth"] == 0, y0 - firm["age0"], y0 + firm["birth"]).astype(np.int64)
    em = p["emissions"]
    ind_firm = cells["industry_code"].to_numpy()[firm_cell]
    polluter = inds["key_polluter"].reindex(ind_firm).fillna(0).to_numpy().astype(bool)
    size_firm = pd.Series(np.log(out0["output"])).groupby(f_idx).mean().reindex(range(n)).to_numpy()
    size_firm = np.nan_to_num(size_firm - np.nanmedian(size_firm))
    logit = np.log(em["polluter_odds"]) * polluter + em["size_slope"] * size_firm
    shift = _calibrate_logit(logit, em["report_share"])
    reports = firm["report_u"] < 1 / (1 + np.exp(-(logit + shift)))

    cell_tab = cells.iloc[firm_cell[f_idx]].reset_index(drop=True)
    firm_id = (f_idx + 100_001).astype(np.int64)
    cluster_of_cell = pd.Series(clusters["cluster_id"].to_numpy(), index=clusters["cell"].to_numpy())
    panel = pd.DataFrame(
        {
            "firm_id": firm_id,
            "year": year.astype(np.int64),
            "province": cell_tab["province"].to_numpy(),
            "region": cell_tab["region"].to_numpy(),
            "county_code": cell_tab["county_code"].to_numpy().astype(np.int64),
            "industry_code": cell_tab["industry_code"].to_numpy().astype(np.int64),
            "cell_id": cell_tab["cell_id"].to_numpy().astype(np.int64),
            "cluster_id": pd.array(cluster_of_cell.reindex(firm_cell[f_idx]).to_numpy(), dtype="string"),
            "batch": pd.array(np.where(cell_batch[firm_cell[f_idx]] > 0, cell_batch[firm_cell[f_idx]], pd.NA), dtype="Int64"),
            "cohort": np.where(g <= y1, g, 0).astype(np.int64),
            "ownership": own[f_idx],
            "founding_year": founding[f_idx],
            "output": obs["output"],
            "value_added": obs["value_added"],
            "capital": obs["capital"],
            "labor": np.round(obs["labor"]).clip(1),
            "materials": obs["materials"],
            "investment": obs["investment"],
            "patents_invention": obs["patents_invention"],
            "patents_utility": obs["patents_utility"],
            "patents_design": obs["patents_design"],
            "reports_emissions": reports[f_idx],
        }
    )
    for pol in POLLUTANTS:
        panel[pol] = np.where(reports[f_idx], obs[pol], np.nan)
    panel["sme"] = (panel["labor"] < p["sme"]["max_employment"]) | (panel["output"] < p["sme"]["max_output"])
    order = np.lexsort((panel["year"].to_numpy(), panel["firm_id"].to_numpy()))
    panel = panel.iloc[order].reset_index(drop=True)
    latent = pd.DataFrame({"firm_id": firm_id, "year": year.astype(np.int64), "omega": obs["omega"], "sme_baseline": sme_base[f_idx]})
    latent = latent.iloc[order].reset_index(drop=True)

    # potential outcomes of member firm-years and the truth
    member = (g > 0) & (g <= y1)
    d0, d1 = _derived(out0), _derived(out1)
    pot = pd.DataFrame({"firm_id": firm_id[member], "year": year[member], "cohort": g[member], "event_time": (year - g)[member]})
    for name in OUTCOMES:
        pot[f"{name}_0"] = d0[name][member]
        pot[f"{name}_1"] = d1[name][member]
    pot = pot.sort_values(["firm_id", "year"]).reset_index(drop=True)
    rep = pd.Series(reports[f_idx][member]).iloc[np.lexsort((year[member], firm_id[member]))].reset_index(drop=True)
    truth = _truth_table(pot, list(OUTCOMES), rep)
    clusters_out = clusters.drop(columns="cell").reset_index(drop=True)
    p_out = copy.deepcopy(p)
    p_out["seed"] = seed
    return World(panel=panel, truth=truth, potential=pot, latent=latent, clusters=clusters_out, params=p_out)


def _calibrate_logit(logit: np.ndarray, share: float) -> float:
    """Intercept shift so that the mean of ``sigmoid(logit + shift)`` equals ``share``."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < share:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
