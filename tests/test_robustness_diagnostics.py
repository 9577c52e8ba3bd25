"""Each robustness diagnostic fires when its assumption breaks, and (about) only then.

The synthetic world has four scenarios (analysis.simulate, ``world.scenario``); for each, the matching
diagnostic of analysis.robustness runs on worlds of several seeds (:data:`WORLD`: 4,000 firms in 160
counties, 12 cells certified a batch; between config/small.yaml and the default world), and on the clean
world of the same seeds:

=================  =====================================  =====================================================
scenario           setting                                diagnostic (fires when)
=================  =====================================  =====================================================
pretrend           ``pretrend: 0.02`` (log TFP a year,    joint pre-trend test of the Callaway-Sant'Anna event
                   ever-certified cells)                  study, ``robustness.pretrend_test``: p < 0.05
anticipation       ``anticipation: 1`` (half the effect   test of the event-time -1 coefficient (varying base),
                   a year early)                          ``pretrend_test(es, [-1])``: p < 0.05
spillover          ``spillover: 1.0`` (non-members of     the same-county spillover estimate against far firms
                   certified counties get the effect)     (``robustness.spillovers``): p < 0.05
no_never_treated   ``no_never_treated: true``             dCDH negative TWFE weights sum below -0.05
=================  =====================================  =====================================================

Both event-study tests are the correct-size test of the effects reports (analysis.did.pretrend: the wild
cluster bootstrap of the CR2 Wald statistic, 999 draws, seed 0) on the Callaway-Sant'Anna event study of the
report window (event times -5 to 2, varying base, clustered by cell).

The outcome is the world's true log TFP (``latent.omega``, what ``tfp_acf`` estimates in the reports), so that
the tests judge the diagnostics, not the production function. Seeds, counts and tolerances are in each test.
The fast tests use seeds 0-2 (three worlds per scenario); the slow ones (``make test-slow``) seeds 0-11, and the
clean-world rates are tested there only (with four worlds a false-positive rate cannot be told from chance).

Measured with these tests' settings (2026-12, seeds 0-11; fires in the broken world / in the clean world):
pre-trend 12 / 1, anticipation 11 / 0, spillover 12 / 1, negative weights 12 / 0. Why this world size: on
the 2,500-firm worlds of config/small.yaml (8 cells a batch) the correct-size anticipation test of the one
lead -1 fired in only 9 of 12 (its power, not its size, is the limit there), and the same-county spillover
estimate fired in 3 of 12 clean worlds.

Known limit (measured, not hidden): non-members of certified counties can drift against far firms although
the world gives them no effect (certification selects cells on recent growth, and growth is correlated
within a county). On the default world's clean report (estimated log TFP, ACF) the same-county estimate is
+0.017 with p 0.008; the report's summary then shows it, and the main estimate without the exposed
controls beside it.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import robustness as R
from analysis.did.dcdh import twfe_weights
from analysis.panel import add_outcomes
from analysis.simulate import simulate_world

SCENARIOS = {
    "clean": {},
    "pretrend": {"pretrend": 0.02},
    "anticipation": {"anticipation": 1},
    "spillover": {"spillover": 1.0},
    "no_never_treated": {"no_never_treated": True},
}
S = R.settings({"did": {"cluster": "cell_id", "alpha": 0.05, "window": [-5, 2]}, "robustness": {}, "seed": 0})
_CACHE: dict[tuple[str, int], dict[str, float]] = {}


#: the test worlds: 4,000 firms, 160 counties, 12 cells certified a batch (see the module docstring)
WORLD = {"world": {"n_firms": 4000, "n_counties": 160, "certification": {"per_batch": 12}}}


def _world(scenario: str, seed: int) -> pd.DataFrame:
    params = copy.deepcopy(WORLD)
    params["world"]["scenario"] = dict(SCENARIOS[scenario])
    w = simulate_world(params, seed=seed)
    return R.add_geography(add_outcomes(w.panel)).merge(w.latent[["firm_id", "year", "omega"]], on=["firm_id", "year"])


def diagnostics(scenario: str, seed: int) -> dict[str, float]:
    """The four diagnostics on one world (cached: each world is simulated once per session)."""
    key = (scenario, seed)
    if key not in _CACHE:
        p = _world(scenario, seed)
        out = {"neg_sum": twfe_weights(p, "omega", "firm_id", "year", "cohort").summary()["sum_negative"]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if (p["cohort"] == 0).any():
                es = R.event_study_cs(p, "omega", S)
                out["pretrend_p"] = R.pretrend_test(es)["p_value"]
                out["anticipation_p"] = R.pretrend_test(es, [-1])["p_value"]
                sp = R.spillovers(p, "omega", S).set_index("check")
                out["spill_p"] = float(sp.loc["spill_county", "p_value"])
        _CACHE[key] = out
    return _CACHE[key]


FIRES = {
    "pretrend": lambda d: d["pretrend_p"] < 0.05,
    "anticipation": lambda d: d["anticipation_p"] < 0.05,
    "spillover": lambda d: d["spill_p"] < 0.05,
    "no_never_treated": lambda d: d["neg_sum"] < -0.05,
}


def _count(scenario: str, diagnostic: str, seeds: range) -> int:
    return sum(bool(FIRES[diagnostic](diagnostics(scenario, s))) for s in seeds)


FAST = range(3)
SLOW = range(12)


@pytest.mark.parametrize("scenario", ["pretrend", "anticipation", "spillover", "no_never_treated"])
def test_diagnostic_fires_when_its_assumption_breaks(scenario):
    """Seeds 0-2 (the quick version of the slow test below): the matching diagnostic fires in at least 2 of the 3
    broken worlds (the slow test: at least 10 of 12)."""
    assert _count(scenario, scenario, FAST) >= 2


def test_negative_weights_stay_small_with_never_treated_firms():
    """Seeds 0-2 of the clean world: the TWFE weights' negative part stays above -0.05 (it is about -0.003)."""
    assert _count("clean", "no_never_treated", FAST) == 0


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["pretrend", "anticipation", "spillover", "no_never_treated"])
def test_diagnostic_fires_in_the_large_majority(scenario):
    """Seeds 0-11: the matching diagnostic fires in at least 10 of 12 broken worlds."""
    assert _count(scenario, scenario, SLOW) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("diagnostic,tolerance", [("pretrend", 2), ("anticipation", 2), ("no_never_treated", 0), ("spillover", 2)])
def test_clean_world_false_positives(diagnostic, tolerance):
    """Seeds 0-11 of the clean world: the pre-trend, anticipation and spillover tests fire at most 2 times in 12
    (nominal 5 %: P(>= 3 of 12) = 2 %); negative TWFE weights never reach -0.05 with never-treated firms."""
    assert _count("clean", diagnostic, SLOW) <= tolerance


@pytest.mark.slow
def test_honestdid_breakdown_falls_with_a_pretrend():
    """Seeds 0-4: the relative-magnitudes breakdown value (Mbar grid 0.5, 1, 2; HonestDiD on the universal-base
    Callaway-Sant'Anna event study of true log TFP) is lower in a world with a declining pre-trend of the
    certified cells (``pretrend: -0.02``) than in the clean world of the same seed, in at least 4 of 5 seeds
    (zero inside the set already at the smallest Mbar counts as the lowest value).

    Why the declining trend: a trend of the effect's sign (``pretrend: +0.02``, the scenario above) also raises
    the post-period estimate by as much as it raises the pre-period violations, so the breakdown value need not
    fall (measured before this test was written: seeds 0-4, it fell in 1 of 5; the estimate-to-violation ratio
    (b0 - 1.96 se) / max |pre-period change| was 1.5-2.4 against 1.8-4.6 in the clean world); a trend against the
    effect lowers that ratio to 0.2-0.8."""
    from analysis.did.honest import honest_did

    SCENARIOS["pretrend_down"] = {"pretrend": -0.02}

    def breakdown(scenario: str, seed: int) -> float:
        es = R.event_study_cs(_world(scenario, seed), "omega", S, base_period="universal")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sens = honest_did(es, restriction="relative_magnitude", M=[0.5, 1, 2], cache=False).tidy()
        b = R._breakdown(sens)
        return -1.0 if not np.isfinite(b) else b

    falls = sum(breakdown("pretrend_down", s) < breakdown("clean", s) for s in range(5))
    assert falls >= 4
