"""The Monte Carlo engine: reproducible across workers, restartable after a kill, errors recorded, metrics right.

What is checked, and against what:

- replications are the same bytes on 1 and 2 Dask workers (R = 4), and the same as one replication
  computed in this process: results depend on the seed only, not on the cluster or the order;
- a run whose driver process is killed midway (SIGKILL of its process group) is resumed: the rerun
  computes exactly the missing replications and leaves every stored file untouched (same inode and
  modification time), and the final results equal an uninterrupted run's;
- a worker process killed while replications run (SIGKILL) loses nothing: the run completes, every
  replication is written once, results equal the reference;
- a failing estimator or world is a stored row with its error and seed, not a dropped replication;
- the summary's bias, RMSE, coverage and their Monte Carlo standard errors equal hand computations
  on a frame of known numbers; the sup-t band's critical value equals the Sidak value for
  independent coefficients and 1.96 for perfectly correlated ones;
- ``map_draws`` gives the same list locally and on a cluster;
- the true untreated trend gap (``untreated_trend_gap``) equals a hand computation on a five-firm
  panel, and on a simulated world moves by exactly the scenario's extra trend of certified cells;
  designs differing only in effects share one measurement; the pre-test's rejection rate is
  labelled size only where the measured pre-treatment gap is zero; coverage of the population ATT
  (mean truth over worlds) equals a hand computation.

The slow tests (``make test-slow``) are the issue's acceptance at R = 500: the 95 % intervals of
Callaway-Sant'Anna, Sun-Abraham and imputation cover the true ATT in [0.93, 0.97] of the clean
default design's worlds (imputation does not: its bias there is the design's, the report explains),
TWFE is biased under strongly heterogeneous effects, far more than they are, and imputation is
unbiased in the world where its model of Y(0) holds (random certification, no exit); and parallel
trends fail before certification in the default world but hold with certification at random.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import montecarlo as mc
from analysis.config import CONFIG_DIR, ROOT, ParameterError

TINY_WORLD = {"years": [2016, 2025], "n_firms": 1000, "n_counties": 40, "certification": {"per_batch": 8, "eligible_share": 0.5}}
# the engine tests run a few quick estimators (the engine, not the estimators, is under test; the
# doctest of replicate and the slow tests run all six)
QUICK = ["cs_dr", "cs_notyet", "imputation", "twfe"]
COMPARE = [c for c in mc.RESULT_COLUMNS if c != "runtime_s"]


def tiny_spec_file(tmp_path: Path, designs: dict | None = None) -> Path:
    """config/validation.yaml with a tiny world and only the given designs (default: clean)."""
    raw = yaml.safe_load((CONFIG_DIR / "validation.yaml").read_text(encoding="utf-8"))
    raw["world"] = TINY_WORLD
    raw["designs"] = designs or {"clean": raw["designs"]["clean"] | {"outcomes": ["tfp_true"], "estimators": QUICK}}
    raw["store"] = str(tmp_path / "store")
    raw["tiny"] = {"replications": 1, "designs": list(raw["designs"])[:1], "n_workers": 1}
    path = tmp_path / "validation_tiny.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    """config/validation.yaml with a tiny world and only the clean design (tiny_spec_file)."""
    return tiny_spec_file(tmp_path_factory.mktemp("mc"))


@pytest.fixture(scope="module")
def reference(spec_path) -> pd.DataFrame:
    """R = 4 of the tiny clean design on one local worker."""
    spec = mc.load_validation(spec_path)
    store = spec_path.parent / "one_worker"
    report = mc.run_validation(spec, replications=4, store=store, n_workers=1, progress=False)
    assert report.computed == {"clean": 4}
    return mc.load_results(store)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[COMPARE].sort_values(["design", "replication", "outcome", "estimator", "kind", "event_time"]).reset_index(drop=True)


def test_same_results_on_one_and_two_workers_and_in_process(spec_path, reference, tmp_path):
    """Replication r depends only on SeedSequence(seed).spawn(R)[r]: 1 worker, 2 workers and a plain call agree exactly."""
    spec = mc.load_validation(spec_path)
    mc.run_validation(spec, replications=4, store=tmp_path / "two", n_workers=2, progress=False)
    two = mc.load_results(tmp_path / "two")
    pd.testing.assert_frame_equal(_sorted(reference), _sorted(two))
    here = mc.replicate(spec, "clean", 2)
    pd.testing.assert_frame_equal(_sorted(reference[reference["replication"] == 2]), _sorted(here))
    # every estimator of the design ran, with the truth attached and a pre-test per estimator
    ok = reference[reference["kind"] == "simple"]
    assert set(ok["estimator"]) == set(QUICK) and (ok["status"] == "ok").all()
    assert ok["truth"].notna().all() and (reference["kind"] == "pretrend").sum() == 4 * len(QUICK)
    # distinct worlds per replication
    assert reference.groupby("replication")["world_seed"].first().nunique() == 4


def test_a_killed_run_resumes_without_recomputing_finished_replications(spec_path, reference, tmp_path):
    """SIGKILL the whole run (driver and its workers) after 2 replications; the rerun computes only the rest."""
    store = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "analysis.montecarlo", "--spec", str(spec_path), "-R", "4", "--store", str(store), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while len(mc.completed(store, "clean")) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no two replications written within 240 s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    done = mc.completed(store, "clean")
    assert 2 <= len(done) < 4, f"the kill came too late to test resumption: {sorted(done)}"
    before = {r: os.stat(mc._rep_path(store, "clean", r)) for r in done}
    for r in done:  # every stored file is complete (atomic writes): it reads, with every estimator
        assert set(pd.read_parquet(mc._rep_path(store, "clean", r))["estimator"].dropna()) >= {"cs_dr", "twfe"}
    spec = mc.load_validation(spec_path)
    written: list[Path] = []
    report = mc.run_validation(spec, replications=4, store=store, n_workers=1, progress=False, on_write=written.append)
    assert report.computed == {"clean": 4 - len(done)} and report.skipped == {"clean": len(done)}
    assert sorted(int(p.stem.split("_")[1]) for p in written) == sorted(set(range(4)) - done)
    for r, st in before.items():
        now = os.stat(mc._rep_path(store, "clean", r))
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), f"replication {r} was rewritten"
    pd.testing.assert_frame_equal(_sorted(reference), _sorted(mc.load_results(store)))


def test_a_killed_worker_loses_nothing(spec_path, reference, tmp_path):
    """SIGKILL one of two workers once a replication is stored: the run completes, each replication written once, same results."""
    spec = mc.load_validation(spec_path)
    store = tmp_path / "worker_killed"
    written: list[Path] = []
    killed: list[int] = []
    with mc.open_client("local", n_workers=2, quiet=True) as client:
        pids = list(client.run(os.getpid).values())

        def killer():
            deadline = time.monotonic() + 240
            while not written and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        report = mc.run_validation(spec, replications=4, store=store, client=client, progress=False, on_write=written.append)
        t.join(timeout=10)
        assert killed, "the worker was not killed"
        assert pids[0] not in client.run(os.getpid).values()
    assert report.computed == {"clean": 4} and report.failed == {"clean": 0}
    assert sorted(p.name for p in written) == [f"rep_{r:05d}.parquet" for r in range(4)]
    pd.testing.assert_frame_equal(_sorted(reference), _sorted(mc.load_results(store)))


def test_failures_are_recorded_with_their_seed(tmp_path):
    """An estimator that cannot run (no never-treated firms) and a world that cannot be drawn are stored as errors."""
    yaml.safe_load((CONFIG_DIR / "validation.yaml").read_text(encoding="utf-8"))
    designs = {
        "none_never": {"outcomes": ["tfp_true"], "estimators": ["cs_dr", "twfe"], "world": {"scenario": {"no_never_treated": True}}},
        "bad_world": {"outcomes": ["tfp_true"], "world": {"years": [2020, 2023]}},
    }
    spec = mc.load_validation(tiny_spec_file(tmp_path, designs))
    out = mc.replicate(spec, "none_never", 1)
    cs = out[out["estimator"] == "cs_dr"]
    assert (cs["status"] == "error").all() and cs["error"].str.contains("never").all()
    assert (out.loc[(out["estimator"] == "twfe") & (out["kind"] == "simple"), "status"] == "ok").all()
    assert out["seed"].eq(f"SeedSequence({spec['seed']}).spawn(R)[1]").all() and out["world_seed"].notna().all()
    bad = mc.replicate(spec, "bad_world", 0)
    assert len(bad) == 1 and bad["kind"].iloc[0] == "replication" and "at least 6 years" in bad["error"].iloc[0]
    summary = mc.summarize(pd.concat([out, bad]), spec)
    assert set(summary["errors"]["design"]) == {"none_never", "bad_world"}
    assert int(summary["simple"].set_index("estimator").loc["cs_dr", "errors"]) == 1


def test_summary_metrics_equal_hand_computations():
    """Bias, RMSE, coverage and MC standard errors on four known replications."""
    est = np.array([0.12, 0.08, 0.15, 0.05])
    rows = pd.DataFrame({
        "design": "d", "replication": range(4), "outcome": "y", "estimator": "e", "kind": "simple", "event_time": np.nan,
        "estimate": est, "std_error": 0.02, "conf_low": est - 0.04, "conf_high": est + 0.04, "truth": 0.1,
        "status": "ok", "runtime_s": 1.0,
    }).reindex(columns=list(mc.RESULT_COLUMNS))
    rows["status"] = "ok"
    s = mc.summarize(rows)["simple"].iloc[0]
    err = est - 0.1
    assert s["bias"] == pytest.approx(err.mean())
    assert s["bias_mcse"] == pytest.approx(err.std(ddof=1) / 2)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert s["coverage"] == pytest.approx(0.5)  # 0.12 and 0.08 cover 0.1; 0.15 and 0.05 do not
    assert s["coverage_mcse"] == pytest.approx(np.sqrt(0.25 / 4))
    assert s["se_ratio"] == pytest.approx(0.02 / err.std(ddof=1))


def test_uniform_band_critical_values():
    """Sup-t critical value: Sidak's for independent coefficients, the pointwise 1.96 for identical ones."""
    rng = np.random.default_rng(0)
    _, _, c3 = mc.uniform_band(np.zeros(3), np.eye(3), rng=rng, draws=200_000)
    from scipy import stats

    assert c3 == pytest.approx(stats.norm.ppf((1 + 0.95 ** (1 / 3)) / 2), abs=0.02)
    _, _, c1 = mc.uniform_band(np.zeros(3), np.ones((3, 3)), rng=rng, draws=200_000)
    assert c1 == pytest.approx(1.96, abs=0.02)


def _draw(seed, scale):
    return float(np.random.default_rng(seed).normal() * scale)


def test_map_draws_same_locally_and_on_a_cluster():
    """The many-draw helper returns the draws in seed order, identical in a local loop and on 2 Dask workers."""
    seeds = np.random.SeedSequence(7).spawn(25)
    local = mc.map_draws(_draw, seeds, 3.0, progress=False)
    with mc.open_client("local", n_workers=2, quiet=True) as client:
        dask = mc.map_draws(_draw, seeds, 3.0, client=client, batch_size=4, progress=False)
        frame = pd.DataFrame({"x": np.arange(30_000.0)})
        sums = mc.map_draws(_frame_sum, [0, 1], frame, client=client, progress=False)
    assert local == dask and len(local) == 25
    assert sums == [float(frame["x"].sum())] * 2


def _frame_sum(seed, frame):
    return float(frame["x"].sum())


def test_dashboard_link_is_printed_and_serves(capsys):
    """open_client prints the Dask dashboard's link (bokeh is in the lock) and the page answers."""
    import urllib.request

    with mc.open_client("local", n_workers=1) as client:
        printed = capsys.readouterr().err
        link = client.dashboard_link
        with urllib.request.urlopen(link, timeout=60) as page:
            status = page.status
    assert f"dashboard: {link}" in printed and link.startswith("http")
    assert status == 200


def test_imputation_decomposition_is_exact_and_matches_the_replication(spec_path, reference, tmp_path):
    """Imputation's error splits exactly into composition + Y(0)-model error, on the same world as replicate().

    The estimate equals the stored replication's imputation estimate (same seed, world and sample),
    and estimate = estimand + y0_error to rounding (the estimator is linear in the outcome).
    """
    spec = mc.load_validation(spec_path)
    path = mc.run_imputation_decomposition(spec, replications=2, designs=["clean"], store=tmp_path, n_workers=1, progress=False)
    dec = pd.read_parquet(path)
    assert path.name == "imputation_decomposition.parquet" and set(dec["replication"]) == {0, 1}
    np.testing.assert_allclose(dec["estimate"], dec["estimand"] + dec["y0_error"], atol=1e-12)
    stored = reference[(reference["estimator"] == "imputation") & (reference["replication"] < 2) & reference["kind"].isin(["simple", "event"])]
    stored = stored.assign(aggregate=np.where(stored["kind"] == "simple", "overall", "e = " + stored["event_time"].fillna(-1).astype(int).astype(str)))
    both = dec.merge(stored[["replication", "aggregate", "estimate", "truth"]], on=["replication", "aggregate"], suffixes=("", "_mc"))
    assert len(both) == len(dec)
    np.testing.assert_allclose(both["estimate"], both["estimate_mc"], atol=1e-12)
    np.testing.assert_allclose(both["truth"], both["truth_mc"], atol=1e-12)
    assert (dec["n_treated"] <= dec["n_truth"]).all()
    s = mc.summarize_decomposition(dec)
    assert set(s["aggregate"]) == set(dec["aggregate"]) and (s["R"] == 2).all()


def test_specification_errors_name_the_key(tmp_path):
    """A misspelt design key or world parameter stops before any work, naming it."""
    path = tiny_spec_file(tmp_path, {"clean": {"outcomes": ["tfp_true"], "wrld": {}}})
    with pytest.raises(ParameterError, match="wrld"):
        mc.load_validation(path)
    path = tiny_spec_file(tmp_path, {"clean": {"outcomes": ["tfp_true"], "world": {"n_firm": 10}}})
    with pytest.raises(ParameterError, match="n_firm"):
        mc.load_validation(path)
    spec = mc.load_validation()
    assert {"clean", "homogeneous", "dynamic", "tfp_acf"} <= set(spec["designs"])


def test_report_without_a_stored_run_says_it_is_tiny(tmp_path):
    """results_for_report runs the tiny grid and says so when no full run is stored."""
    spec = mc.load_validation(tiny_spec_file(tmp_path))
    res, note = mc.results_for_report(spec, tiny_store=tmp_path / "tiny", progress=False)
    assert "tiny run" in note and set(res["replication"]) == {0}
    mc.run_validation(spec, replications=1, n_workers=1, progress=False)  # now a "full" run is stored
    res2, note2 = mc.results_for_report(spec, tiny_store=tmp_path / "tiny", progress=False)
    assert "Stored results" in note2 and len(res2) == len(res)


# ---------------------------------------------------------------------------------------------
# acceptance at R = 500 (make test-slow): computes what the store lacks, reuses what it has
# ---------------------------------------------------------------------------------------------
def _stored_summary(design: str, replications: int) -> pd.DataFrame:
    """The overall-ATT summary of ``replications`` stored worlds of ``design`` (computing what the store lacks)."""
    spec = mc.load_validation()
    mc.run_validation(spec, replications=replications, designs=[design], progress=False)
    return mc.summarize(mc.load_results(spec["store"], designs=[design], replications=replications), spec)["simple"]


def _coverage_at_500(design: str, estimators: tuple[str, ...]) -> None:
    s = _stored_summary(design, 500)
    for est in estimators:
        rows = list(s[s["estimator"] == est].itertuples())
        assert rows, est
        for row in rows:
            assert row.n == 500
            assert 0.93 <= row.coverage <= 0.97, (design, row.outcome, est, row.coverage)


@pytest.mark.slow
def test_coverage_at_500_replications_on_the_clean_design():
    """CS (never-treated and not-yet-treated controls) and Sun-Abraham 95 % intervals cover the true
    ATT in [0.93, 0.97] of 500 clean worlds (issue 13's acceptance; measured 0.958, 0.960, 0.948 with the
    current seeding, 0.954, 0.958, 0.944 with the earlier one)."""
    _coverage_at_500("clean", ("cs_dr", "cs_notyet", "sunab"))


@pytest.mark.slow
def test_imputation_coverage_at_500_where_its_assumptions_hold():
    """Imputation (and CS beside it) cover in [0.93, 0.97] of 500 worlds of ``random_no_turnover``,
    where certification is at random and there is no turnover: parallel trends hold before and
    after certification (measured by ``run_parallel_trends``) and the firm effects are those of a
    stable panel. Measured 0.942 (imputation) and 0.958 (CS)."""
    _coverage_at_500("random_no_turnover", ("imputation", "cs_dr"))


@pytest.mark.slow
def test_imputation_on_the_clean_design_is_biased_upward_and_covers_least():
    """Imputation on the clean design: the one estimator biased upward, beyond 4 MC s.e., and the
    lowest coverage of the robust estimators (below CS's).

    The clean design's certification rules (the growth cut above all) make the untreated outcome of
    certified cells rise before certification (gap -0.0135 at e = -4, MC s.e. 0.0009, R = 100), and
    imputation's model of Y(0) uses every pre-period. Measured at R = 500 with the current seeding:
    bias +0.0032 (MC s.e. 0.0003), coverage 0.930, at the lower edge of issue 13's band [0.93, 0.97]
    (CS: bias -0.0016, coverage 0.958). An earlier seeding gave 0.926, so this is a statement about
    the bias, not about which side of 0.93 the coverage falls on.
    """
    s = _stored_summary("clean", 500).set_index("estimator")
    assert s.loc["imputation", "bias"] > 4 * s.loc["imputation", "bias_mcse"]
    assert s.loc["cs_dr", "bias"] < s.loc["imputation", "bias"] - 4 * s.loc["imputation", "bias_mcse"]
    assert s.loc["imputation", "coverage"] < s.loc["cs_dr", "coverage"]
    assert s.loc["imputation", "coverage"] == min(s.loc[e, "coverage"] for e in ("cs_dr", "cs_notyet", "sunab", "imputation", "stacked"))


@pytest.mark.slow
def test_twfe_is_biased_under_heterogeneous_effects_and_the_robust_estimators_much_less():
    """In the dynamic design TWFE's bias exceeds 4 MC s.e. and five times the largest of CS, Sun-Abraham and imputation.

    The robust estimators are not exactly unbiased there against the truth the report uses (all
    certified firm-years): they average other firm-years with other weights (firms entering after
    certification cannot be imputed; CS weights cohorts by size), which matters when effects grow
    steeply with time since certification; and imputation's model of Y(0) misses the default
    world's selection (see the imputation test below and the report).
    """
    s = _stored_summary("dynamic", 100).set_index("estimator")
    assert (s["n"] == 100).all()
    assert abs(s.loc["twfe", "bias"]) > 4 * s.loc["twfe", "bias_mcse"]
    assert abs(s.loc["twfe", "bias"]) > 5 * max(abs(s.loc[e, "bias"]) for e in ("cs_dr", "sunab", "imputation"))


@pytest.mark.slow
def test_imputation_is_unbiased_where_its_model_of_y0_holds():
    """Known truth for imputation: with certification at random and (almost) no entry or exit, its
    event-time and overall estimates are unbiased (within 3 MC s.e. at R = 100), while on the clean
    design its bias at the last event time exceeds 4 MC s.e. (R = 500): the clean design's bias
    is the design's (selection on output, exit on low TFP), not the estimator's arithmetic, which
    equals diff-diff's on these worlds (tests/test_imputation.py)."""
    spec = mc.load_validation()
    mc.run_validation(spec, replications=100, designs=["random_no_turnover"], progress=False)
    mc.run_validation(spec, replications=500, designs=["clean"], progress=False)
    summ = mc.summarize(pd.concat([mc.load_results(spec["store"], designs=["random_no_turnover"], replications=100),
                                   mc.load_results(spec["store"], designs=["clean"], replications=500)]), spec)
    ev, simple = summ["event"], summ["simple"]
    ok = pd.concat([ev[(ev["design"] == "random_no_turnover") & (ev["estimator"] == "imputation")],
                    simple[(simple["design"] == "random_no_turnover") & (simple["estimator"] == "imputation")]])
    assert len(ok) == 4 and (ok["n"] == 100).all()
    assert (ok["bias"].abs() < 3 * ok["bias_mcse"]).all(), ok[["event_time", "bias", "bias_mcse"]]
    last = ev[(ev["design"] == "clean") & (ev["estimator"] == "imputation")].sort_values("event_time").iloc[-1]
    assert last["bias"] > 4 * last["bias_mcse"]


# ---------------------------------------------------------------------------------------------
# parallel trends, measured on the untreated outcome; what coverage is measured against
# ---------------------------------------------------------------------------------------------
def _gap_frame() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Five firms, 2017-2021: two of cohort 2020 (firm 2 not observed in 2018), one of 2021, two never treated."""
    years = [2017, 2018, 2019, 2020, 2021]
    y0 = {1: [0.0, 0.1, 0.3, 0.5, 0.4], 2: [1.0, np.nan, 1.2, 1.2, 1.3], 3: [0.0, 0.0, 0.2, 0.5, 0.6],
          4: [0.0, 0.1, 0.1, 0.2, 0.2], 5: [0.5, 0.5, 0.6, 0.6, 0.8]}
    cohort = {1: 2020, 2: 2020, 3: 2021, 4: 0, 5: 0}
    effect = {1: 0.05, 2: 0.05, 3: 0.1}
    rows, pot = [], []
    for f, vs in y0.items():
        for t, v in zip(years, vs):
            if np.isnan(v):
                continue
            e = effect.get(f, 0.0) if cohort[f] and t >= cohort[f] else 0.0
            rows.append({"firm_id": f, "year": t, "cohort": cohort[f], "tfp_true": v + e})
            if cohort[f]:
                pot.append({"firm_id": f, "year": t, "tfp_0": v, "tfp_1": v + e})
    return pd.DataFrame(rows), pd.DataFrame(pot)


def test_untreated_trend_gap_equals_hand_computation():
    """The 2x2 DiD of Y(0) (observed minus the true effect) against the base year g - 1, by cohort and pooled.

    Hand computation on _gap_frame: cohort 2020 at e = -2 (2018 against 2019): treated firm 1 only
    (firm 2 lacks 2018), -0.2, never-treated (0 - 0.1) / 2 = -0.05, gap -0.15; at e = 0: treated
    (0.2 + 0) / 2, never-treated (0.1 + 0) / 2, gap 0.05 over 2 firms; cohort 2021 at e = -2 (2019
    against 2020): -0.3 - (-0.1 + 0) / 2 = -0.25, at e = 0: 0.1 - (0 + 0.2) / 2 = 0. Pooled by the
    cohorts' firms: e = -2 (-0.15 - 0.25) / 2 = -0.2, e = 0 (2 x 0.05 + 0) / 3.
    """
    panel, pot = _gap_frame()
    gap = mc.untreated_trend_gap(panel, pot, window=(-2, 0)).set_index(["cohort", "event_time"])
    expect = {(2020, -2.0): (-0.15, 1), (2020, -1.0): (0.0, 2), (2020, 0.0): (0.05, 2),
              (2021, -2.0): (-0.25, 1), (2021, -1.0): (0.0, 1), (2021, 0.0): (0.0, 1),
              (0, -2.0): (-0.2, 2), (0, -1.0): (0.0, 3), (0, 0.0): (0.1 / 3, 3)}
    assert set(gap.index) == set(expect)
    for k, (g, n) in expect.items():
        assert gap.loc[k, "gap"] == pytest.approx(g, abs=1e-12), k
        assert gap.loc[k, "n_treated"] == n and gap.loc[k, "n_control"] == 2
    with pytest.raises(ValueError, match="tfp_1"):
        mc.untreated_trend_gap(panel, pot.drop(columns="tfp_1"))


def test_parallel_trends_verdict_labels_the_pretest_size_only_where_it_holds():
    """summarize() calls a pre-test's rejection rate size only where the measured pre-treatment gap is zero.

    Design ``a``: pre-treatment gaps 0.001 +/- 0.01 over 4 worlds (t = 0.2): holds, role size;
    ``b``: gaps 0.05 +/- 0.001 (t = 100): fails, role power; ``c``: not measured, the
    specification's role (default size) marked assumed.
    """
    pt = pd.DataFrame({"design": np.repeat(["a", "b"], 4), "replication": list(range(4)) * 2, "cohort": 0, "event_time": -3.0,
                       "gap": [0.011, -0.009, 0.011, -0.009, 0.051, 0.049, 0.051, 0.049], "n_treated": 10, "n_control": 20})
    v = mc.summarize_parallel_trends(pt)["designs"].set_index("design")
    assert v.loc["a", "pre_t"] == pytest.approx(0.001 / (np.std([0.011, -0.009] * 2, ddof=1) / 2))
    assert bool(v.loc["a", "pre_holds"]) and not bool(v.loc["b", "pre_holds"]) and pd.isna(v.loc["a", "post_holds"])
    rows = pd.DataFrame({"design": ["a", "b", "c"], "replication": 0, "outcome": "y", "estimator": "e", "kind": "pretrend",
                         "p_value": [0.5, 0.01, 0.2], "df": 3.0, "status": "ok"}).reindex(columns=list(mc.RESULT_COLUMNS))
    summary = mc.summarize(rows, parallel_trends=pt)
    pre = summary["pretrend"].set_index("design")
    assert pre["pre_trends"].to_dict() == {"a": "hold", "b": "fail", "c": "not measured"}
    assert pre["role"].to_dict() == {"a": "size", "b": "power", "c": "size (assumed)"}
    note = mc.parallel_trends_note(summary, design="b", outcome="y")
    assert "+0.0500 (0.0006) at e = -3" in note and "fail before certification" in note and "falls faster" in note
    assert "power against this selection, not its size" in note
    assert "hold before certification" in mc.parallel_trends_note(summary, design="a", outcome="y")
    assert mc.parallel_trends_note(summary, design="c") == ""


def test_population_coverage_and_the_inference_note_equal_hand_computations():
    """Coverage against the mean truth over worlds (the population ATT) next to coverage of each world's truth.

    Truths 0.1, 0.2, 0.1, 0.2 (mean 0.15), estimates 0.11, 0.19, 0.13, 0.24 with intervals of
    +/- 0.045: all four contain their world's truth, three contain 0.15 (not [0.195, 0.285]).
    """
    est, truth = np.array([0.11, 0.19, 0.13, 0.24]), np.array([0.1, 0.2, 0.1, 0.2])
    rows = pd.DataFrame({"design": "dynamic", "replication": range(4), "outcome": "tfp_true", "estimator": "cs_dr", "kind": "simple",
                         "estimate": est, "std_error": 0.05, "conf_low": est - 0.045, "conf_high": est + 0.045, "truth": truth,
                         "status": "ok", "runtime_s": 1.0}).reindex(columns=list(mc.RESULT_COLUMNS))
    summary = mc.summarize(rows)
    s = summary["simple"].iloc[0]
    assert s["coverage"] == 1.0 and s["coverage_pop"] == 0.75
    assert s["coverage_pop_mcse"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    assert s["sd_estimate"] == pytest.approx(est.std(ddof=1)) and s["se_ratio_pop"] == pytest.approx(0.05 / est.std(ddof=1))
    assert s["truth_sd"] == pytest.approx(truth.std(ddof=1))
    note = mc.inference_target_note(summary)
    assert "coverage 1.000" in note and "coverage of the population ATT 0.750" in note
    assert "target the population ATT" in note  # s.e. / s.d. = 0.05 / sd(err) > 1.5
    assert mc.inference_target_note(summary, design="clean") == ""


def test_parallel_trends_run_shares_untreated_worlds_and_measures_a_known_pretrend(tmp_path):
    """On tiny worlds: designs that differ only in effects get the same gaps (one simulation); the
    base year's gap is 0; and the scenario's extra trend of ever-certified cells (0.05 a year on
    TFP) moves the gap at event time e by exactly 0.05 (e + 1) times the share of the comparison
    firms that are not ever certified (cells of the batch announced in 2025 are never treated
    within the data but carry the trend too), against the same world without it."""
    clean = {"outcomes": ["tfp_true"], "estimators": QUICK}
    designs = {"clean": clean, "strong": clean | {"world": {"effects": {"tfp": {"base": 0.2, "slope": 0.1}}}},
               "trend": clean | {"world": {"scenario": {"pretrend": 0.05}}}}
    spec = mc.load_validation(tiny_spec_file(tmp_path, designs))
    path = mc.run_parallel_trends(spec, replications=1, store=tmp_path, progress=False)
    f = pd.read_parquet(path)
    a, b = (f[f["design"] == d].drop(columns="design").reset_index(drop=True) for d in ("clean", "strong"))
    pd.testing.assert_frame_equal(a, b)
    assert (f.loc[f["event_time"] == -1, "gap"] == 0).all()
    # the exact shift, cohort by cohort, from the world's own firms
    from analysis.simulate import simulate_world

    seed = mc.replication_seeds(int(spec["seed"]), 1)[0].spawn(3)[0]
    world = simulate_world({"world": spec["designs"]["trend"]["world_params"]}, seed=int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    late = set(world.clusters.loc[world.clusters["cohort"] > 2025, "cell_id"])
    p = world.panel
    obs = p.pivot(index="firm_id", columns="year", values="cohort").notna()
    first = p.groupby("firm_id")[["cohort", "cell_id"]].first()
    pooled = {}
    for g in sorted(set(first["cohort"]) - {0}):
        for e in range(-4, 3):
            t, base = g + e, g - 1
            if t not in obs.columns or base not in obs.columns:
                continue
            both = obs[t] & obs[base]
            n_t = int((both & (first["cohort"] == g)).sum())
            ctrl = both & (first["cohort"] == 0)
            s_late = float(first.loc[ctrl, "cell_id"].isin(late).mean())
            if n_t:
                pooled.setdefault(e, []).append((n_t, 0.05 * (e + 1) * (1 - s_late)))
    shift = {e: np.average([x for _, x in v], weights=[n for n, _ in v]) for e, v in pooled.items()}
    ga = f[(f["design"] == "clean") & (f["cohort"] == 0)].set_index("event_time")["gap"]
    gt = f[(f["design"] == "trend") & (f["cohort"] == 0)].set_index("event_time")["gap"]
    for e, x in shift.items():
        assert gt[float(e)] - ga[float(e)] == pytest.approx(x, abs=1e-10), e
    assert len(shift) == 7


@pytest.mark.slow
def test_parallel_trends_fail_before_certification_by_rule_and_hold_at_random(tmp_path):
    """Known truth about the designs (R = 100 worlds each, the simulator only): in the default world
    certified cells' untreated TFP departs from the never-treated path before certification (the
    rule selects cells on output level and growth, i.e. also on TFP's persistent shocks), so its
    pre-test rejection rate is power, not size; with certification at random and no turnover it
    does not, at any event time; and the growth cut is a cause (switching it off shrinks the gap)."""
    spec = mc.load_validation()
    spec["designs"] = {**spec["designs"], **mc._rule_designs(spec)}
    path = mc.run_parallel_trends(spec, replications=100, designs=["clean", "random_no_turnover", "clean~no_growth_cut"], store=tmp_path,
                                  progress=False)
    s = mc.summarize_parallel_trends(pd.read_parquet(path))
    v = s["designs"].set_index("design")
    assert not v.loc["clean", "pre_holds"] and v.loc["clean", "pre_t"] < -5
    assert v.loc["random_no_turnover", "pre_holds"] and v.loc["random_no_turnover", "post_holds"]
    g = s["gaps"].set_index(["design", "event_time"])["gap"]
    assert g[("clean~no_growth_cut", -4.0)] > g[("clean", -4.0)] + 0.004
