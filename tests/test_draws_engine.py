"""The study's many-draw loops on the Monte Carlo engine: the TFP firm bootstrap and randomization
inference give the same draws in a plain loop here and on a Dask cluster.

What is checked, and against what:

- every bootstrap draw and every RI chunk depends only on its own seed (children of
  ``numpy.random.SeedSequence(seed).spawn(n)``): the first draws of a larger run are the draws of a
  smaller one;
- the TFP bootstrap standard errors (and the draws behind them) and the RI draws and p-value are
  identical with no engine and on a ``distributed.LocalCluster`` of two single-threaded worker
  processes, through the estimators' ``mapper`` and through the study's config keys
  (``tfp.engine``, ``robustness.ri.engine``, here the cluster's scheduler address);
- the large arguments (the TFP panel's arrays) reach each worker once, not once per draw;
- a bad engine value is refused before any work, naming the config key.

One cluster serves the whole module (started once, a few seconds); each test runs in seconds.
"""

from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import engine, productivity, robustness
from analysis.config import ParameterError, load_params
from analysis.did.randomization import AssignmentDesign, randomization_inference
from analysis.panel import add_outcomes
from analysis.tfp import MultipleRootsWarning, estimate_production
from analysis.tfp.arrays import PanelData

from acf_dgp import simulate_acf
from tools_import import load_tool


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes with 1 thread each (the engine's local cluster)."""
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       env=dict(engine.WORKER_ENV), silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _acf(df: pd.DataFrame, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultipleRootsWarning)
        return estimate_production(df, "y", "l", "k", "m", method="acf", unit="firm", time="year", progress=False, **kw)


@pytest.fixture(scope="module")
def acf_data() -> pd.DataFrame:
    """ACF (2015) design 1, 150 firms x 10 years (tests/acf_dgp.py)."""
    return simulate_acf(1, 150, seed=11)


# ---------------------------------------------------------------------------------------------
# the TFP firm bootstrap
# ---------------------------------------------------------------------------------------------
def test_bootstrap_draws_depend_only_on_their_own_seed(acf_data):
    """Draw b uses SeedSequence(seed).spawn(n_boot)[b]: the 6 draws of n_boot=6 are the first 6 of
    n_boot=10, bit for bit (one shared stream would make them differ as soon as any draw does)."""
    few, many = _acf(acf_data, n_boot=6, seed=4), _acf(acf_data, n_boot=10, seed=4)
    assert np.array_equal(few.draws.to_numpy(), many.draws.to_numpy()[:6])
    assert not np.array_equal(many.draws.to_numpy()[6:], many.draws.to_numpy()[:4])


def test_tfp_bootstrap_identical_locally_and_on_two_workers(acf_data, client):
    """ACF, 12 firm-bootstrap draws: the draws and the tidy standard errors with mapper=None equal those
    through map_draws on 2 worker processes (batches of 5 draws, so the batches split unevenly)."""
    here = _acf(acf_data, n_boot=12, seed=7)
    there = _acf(acf_data, n_boot=12, seed=7, mapper=functools.partial(engine.map_draws, client=client, batch_size=5, progress=False))
    assert here.meta["failed_draws"] == 0
    assert np.array_equal(here.draws.to_numpy(), there.draws.to_numpy())
    assert here.se().to_dict() == there.se().to_dict()
    assert np.all(here.se() > 0)


def test_tfp_engine_key_of_the_config_runs_the_study_bootstrap_on_the_cluster(small_world, small_params, client):
    """analysis.productivity.estimate_tfp with the study's tfp section (ACF main, 6 draws, no robustness
    methods to keep it short): tfp.engine set to the cluster's scheduler address gives the same standard
    errors and TFP as tfp.engine null."""
    panel = add_outcomes(small_world.panel)
    tfp = {**small_params["tfp"], "robustness": [], "n_boot": 6}
    _, local = productivity.estimate_tfp(panel, tfp, seed=3, progress=False)
    out, remote = productivity.estimate_tfp(panel, {**tfp, "engine": client.scheduler.address}, seed=3, progress=False)
    a, b = local["acf"], remote["acf"]
    assert not isinstance(a, Exception) and not isinstance(b, Exception)
    assert "firm bootstrap, 6 draws" in b.meta["se"]
    assert a.se().to_dict() == b.se().to_dict()
    assert np.array_equal(a.draws.to_numpy(), b.draws.to_numpy())
    pd.testing.assert_series_equal(out["tfp_acf"], a.tfp.reindex(out.index), check_names=False)


def _where(seed, data) -> tuple[int, int]:
    return os.getpid(), id(data)


def test_the_panel_reaches_each_worker_once(acf_data, client):
    """map_draws sends a large argument (a PanelData of the estimator, a data frame) once to each worker:
    over 16 draws in 8 batches each worker process sees one object, not one per batch."""
    from analysis.tfp.estimate import _build_panel

    big = pd.concat([acf_data.assign(firm=acf_data["firm"] + 1000 * i) for i in range(10)], ignore_index=True)
    panel, _ = _build_panel(big, output="y", free=["l"], state=["k"], proxy="m", share=None, markov=[], exit_col=None,
                            unit="firm", time="year")
    assert isinstance(panel, PanelData) and panel.nbytes == engine._nbytes(panel) > 1e5
    assert engine._nbytes(big) == int(big.memory_usage(index=True).sum())
    for arg in (panel, big):
        seen = engine.map_draws(_where, list(range(16)), arg, client=client, batch_size=2, progress=False)
        pids = {pid for pid, _ in seen}
        assert len(set(seen)) == len(pids)  # one object per worker process


# ---------------------------------------------------------------------------------------------
# randomization inference
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ri_panel(small_world) -> pd.DataFrame:
    """The small world's panel with log labour productivity (as tests/test_robustness_ri.py)."""
    return small_world.panel.assign(lp=lambda d: np.log(d["value_added"] / d["labor"]))


def _design(panel: pd.DataFrame) -> AssignmentDesign:
    cells = panel.groupby("cell_id").agg(province=("province", "first"), batch=("batch", "first"), n=("firm_id", "nunique")).reset_index()
    pool = cells[cells["batch"].notna() | (cells["n"] >= 5)]
    cohorts = panel.dropna(subset=["batch"]).groupby("batch")["cohort"].first().to_dict()
    return AssignmentDesign.from_cells(pool["cell_id"], pool["province"], pool["batch"], cohorts=cohorts)


def test_ri_chunks_depend_only_on_their_own_seed(ri_panel):
    """Chunk c of the draws uses SeedSequence(seed).spawn(n_chunks)[c]: the 130 draws of n_draws=130 are
    the first 130 of n_draws=300 (chunks of 50), and another seed gives other draws."""
    d = _design(ri_panel)
    few = randomization_inference(ri_panel, "lp", d, statistic="cs", n_draws=130, seed=2, progress=False, chunk_size=50)
    many = randomization_inference(ri_panel, "lp", d, statistic="cs", n_draws=300, seed=2, progress=False, chunk_size=50)
    other = randomization_inference(ri_panel, "lp", d, statistic="cs", n_draws=130, seed=3, progress=False, chunk_size=50)
    assert few.draws.size == 130 and np.array_equal(few.draws, many.draws[:130])
    assert not np.array_equal(few.draws, other.draws)


@pytest.mark.parametrize("statistic", ["cs", "twfe"])
def test_ri_identical_locally_and_on_two_workers(ri_panel, client, statistic):
    """250 draws in chunks of 40 (7 chunks, one per task): the placebo draws and the RI p-value with
    mapper=None equal those through map_draws on 2 worker processes."""
    d = _design(ri_panel)
    kw = dict(statistic=statistic, n_draws=250, seed=5, progress=False, chunk_size=40)
    here = randomization_inference(ri_panel, "lp", d, **kw)
    there = randomization_inference(ri_panel, "lp", d, **kw, mapper=functools.partial(engine.map_draws, client=client, batch_size=1, progress=False))
    assert here.draws.size == 250 and np.array_equal(here.draws, there.draws)
    assert here.p_value == there.p_value and here.actual == there.actual


def test_ri_engine_key_of_the_config_runs_the_robustness_draws_on_the_cluster(small_world, small_params, client):
    """analysis.robustness.randomization_tests with the small set's robustness section (199 draws):
    robustness.ri.engine set to the cluster's scheduler address gives the same CS and TWFE draws and
    p-values as ri.engine null."""
    panel = add_outcomes(small_world.panel)
    s = robustness.settings(small_params)
    assert s["ri"]["engine"] is None
    local = robustness.randomization_tests(panel, "log_labor", s, progress=False)
    s_remote = {**s, "ri": {**s["ri"], "engine": client.scheduler.address}}
    remote = robustness.randomization_tests(panel, "log_labor", s_remote, progress=False)
    for stat in ("cs", "twfe"):
        assert local[stat].draws.size == 199
        assert np.array_equal(local[stat].draws, remote[stat].draws)
        assert local[stat].p_value == remote[stat].p_value


# ---------------------------------------------------------------------------------------------
# bad engine values
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine, match", [
    ("lokal", r"tfp\.engine must be null .*'local', 'slurm', 'pbs'.*got 'lokal'"),
    ({"cluster": "sge"}, r"tfp\.engine\.cluster must be 'local'.*got 'sge'"),
    ({"cluster": "local", "n_workers": 0}, r"tfp\.engine\.n_workers must be a positive whole number"),
    ({"cluster": "local", "workers": 2}, r"unknown parameter\(s\) tfp\.engine\.workers"),
    (3, r"tfp\.engine must be null"),
])
def test_bad_tfp_engine_is_refused_naming_the_key(small_world, engine, match):
    """tfp.engine that open_client cannot take stops estimate_tfp before any estimation, naming the key."""
    with pytest.raises(ParameterError, match=match):
        productivity.estimate_tfp(small_world.panel, {"method": "acf", "robustness": [], "n_boot": 2, "engine": engine})


def test_bad_ri_engine_is_refused_by_the_settings_and_by_make(tmp_path, small_params):
    """robustness.ri.engine is checked when the robustness settings are read and when make writes the
    parameter stamps (the engine keys are not stamped: moving the draws re-runs nothing)."""
    params = {**small_params, "robustness": {**small_params["robustness"], "ri": {**small_params["robustness"]["ri"], "engine": "slurmm"}}}
    with pytest.raises(ParameterError, match=r"robustness\.ri\.engine must be null.*got 'slurmm'"):
        robustness.settings(params)
    write_stamps = load_tool("stamps").write_stamps
    from analysis.config import CONFIG_DIR

    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "default.yaml").write_text((CONFIG_DIR / "default.yaml").read_text())
    (cfg / "x.yaml").write_text("robustness: {ri: {engine: {cluster: sge}}}\n")
    with pytest.raises(ParameterError, match=r"robustness\.ri\.engine\.cluster must be"):
        write_stamps("x", tmp_path / "stamps", config_dir=cfg)
    (cfg / "x.yaml").write_text("tfp: {engine: local}\nrobustness: {ri: {engine: tcp://10.0.0.1:8786}}\n")
    write_stamps("x", tmp_path / "stamps", config_dir=cfg)
    (cfg / "y.yaml").write_text("tfp: {engine: null}\n")
    write_stamps("y", tmp_path / "stamps_y", config_dir=cfg)
    for section in ("tfp", "robustness"):
        assert (tmp_path / "stamps" / f"{section}.json").read_text() == (tmp_path / "stamps_y" / f"{section}.json").read_text()
    assert load_params("default")["tfp"]["engine"] is None
