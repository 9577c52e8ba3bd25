"""Randomization inference (analysis.did.randomization): the draws respect the design, the fast statistics
equal the estimators on relabelled data, and the p-value has its size under the sharp null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.did import att_gt, twfe
from analysis.did.randomization import (
    AssignmentDesign,
    CSStatistic,
    TWFEStatistic,
    randomization_inference,
    ri_p_value,
)


@pytest.fixture(scope="module")
def world_panel(small_world) -> pd.DataFrame:
    """The small world's panel with log labour productivity."""
    return small_world.panel.assign(lp=lambda d: np.log(d["value_added"] / d["labor"]))


def _design(panel: pd.DataFrame, within: str = "province", min_firms: int = 5) -> AssignmentDesign:
    cells = panel.groupby("cell_id").agg(province=("province", "first"), batch=("batch", "first"), n=("firm_id", "nunique")).reset_index()
    pool = cells[cells["batch"].notna() | (cells["n"] >= min_firms)]
    cohorts = panel.dropna(subset=["batch"]).groupby("batch")["cohort"].first().to_dict()
    return AssignmentDesign.from_cells(pool["cell_id"], pool["province"], pool["batch"], cohorts=cohorts, within=within, max_per_stratum=8)


def _relabel(panel: pd.DataFrame, design: AssignmentDesign, assignment: np.ndarray) -> pd.DataFrame:
    cohort = pd.Series(design.cohort_of(assignment), index=design.cells)
    return panel.assign(cohort=panel["cell_id"].map(cohort).fillna(0).astype(int))


def test_draws_keep_counts_per_province_and_batch(world_panel):
    """within='province': every draw certifies, in each province and batch, as many cells as the actual
    assignment; no cell twice; only pool cells."""
    d = _design(world_panel)
    draws = d.draw(200, seed=3)
    K = d.cohorts.size - 1
    for k in range(1, K + 1):
        want = np.bincount(d.stratum[d.actual == k], minlength=d.stratum.max() + 1)
        got = np.stack([np.bincount(d.stratum[row == k], minlength=d.stratum.max() + 1) for row in draws])
        assert (got == want).all()
    assert (draws != d.actual).any(axis=1).mean() > 0.9        # draws differ from the actual assignment


def test_draws_within_batch_respect_the_cap(world_panel):
    """within='batch': each batch keeps its national count and no province gets more than 8 cells of a batch."""
    d = _design(world_panel, within="batch")
    draws = d.draw(100, seed=5)
    for k in range(1, d.cohorts.size):
        assert ((draws == k).sum(axis=1) == (d.actual == k).sum()).all()
        per_prov = np.stack([np.bincount(d.stratum[row == k], minlength=d.stratum.max() + 1) for row in draws])
        assert per_prov.max() <= 8


@pytest.mark.parametrize("kind", ["cs", "twfe"])
def test_fast_statistic_equals_the_estimator_on_relabelled_data(world_panel, kind):
    """The precomputed statistic equals att_gt(...).aggregate('simple') (1e-12) / twfe (pyfixest, 1e-9) on the
    actual assignment and on three reassignments."""
    d = _design(world_panel)
    S = {"cs": CSStatistic, "twfe": TWFEStatistic}[kind]
    stat = S.prepare(world_panel, "lp", unit="firm_id", time="year", cell="cell_id", pool=d.cells, cohorts=d.cohorts[1:])

    def ref(panel):
        if kind == "cs":
            return float(att_gt(panel, "lp", "firm_id", "year", "cohort").aggregate("simple").coef()["ATT"])
        return float(twfe(panel, "lp", "firm_id", "year", "cohort").coef()["ATT"])

    assert stat(d.cohort_of(d.actual))[0] == pytest.approx(ref(world_panel), abs=1e-9)
    draws = d.draw(3, seed=9)
    values = stat(d.cohort_of(draws))
    for k in range(3):
        assert values[k] == pytest.approx(ref(_relabel(world_panel, d, draws[k])), abs=1e-9)


def test_ri_has_its_size_under_the_sharp_null(world_panel):
    """An outcome unaffected by certification (firm effect + noise), the 'actual' assignment itself drawn from
    the design: over 200 replications (seeds 0-199, 199 draws each) the RI test at 5 % rejects in 1-10 %
    (binomial 200 x 0.05: 2.5th-97.5th percentiles 4-16 rejections)."""
    rng = np.random.default_rng(2024)
    firms = world_panel["firm_id"].unique()
    fe = pd.Series(rng.normal(size=firms.size), index=firms)
    panel = world_panel.assign(noise=world_panel["firm_id"].map(fe).to_numpy() + rng.normal(size=len(world_panel)))
    d = _design(panel)
    stat = CSStatistic.prepare(panel, "noise", unit="firm_id", time="year", cell="cell_id", pool=d.cells, cohorts=d.cohorts[1:])
    rejections = 0
    for rep in range(200):
        actual = d.draw(1, seed=10_000 + rep)[0]
        theta = stat(d.cohort_of(actual))[0]
        draws = stat(d.cohort_of(d.draw(199, seed=rep)))
        rejections += ri_p_value(theta, draws) <= 0.05
    assert 2 <= rejections <= 20


def test_randomization_inference_result(world_panel):
    """The wrapper: RI p-value from the draws, a progress bar over chunks, a map hook with the contract of
    map_draws (here a recording loop: 120 draws in chunks of 25 are 5 seeds, children of SeedSequence(1)),
    tidy row and figure."""
    d = _design(world_panel)
    seen = []

    def mapper(f, seeds, *args, progress=None, desc=""):
        seen.extend(seeds)
        return [f(s, *args) for s in seeds]

    res = randomization_inference(world_panel, "lp", d, statistic="twfe", n_draws=120, seed=1, progress=False, mapper=mapper, chunk_size=25)
    assert [s.spawn_key for s in seen] == [(c,) for c in range(5)] and res.n_draws == 120
    assert all(s.entropy == 1 for s in seen)
    assert res.p_value == pytest.approx(ri_p_value(res.actual, res.draws))
    assert res.actual == pytest.approx(float(twfe(world_panel, "lp", "firm_id", "year", "cohort").coef()["ATT"]), abs=1e-9)
    row = res.tidy()
    assert row["estimator"].iloc[0] == "ri_twfe" and row["draws"].iloc[0] == 120
    fig = res.plot(analytic_p=0.01)
    assert fig.axes


def test_ri_p_value_counts_ties_and_the_actual():
    """The RI p-value counts ties and the actual assignment itself; a design without cohorts is refused."""
    assert ri_p_value(0.5, np.array([0.1, -0.6, 0.5, np.nan])) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="no cohort"):
        AssignmentDesign.from_cells([1, 2], [0, 0], [7, 0], cohorts={})
