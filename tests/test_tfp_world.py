"""Production functions in the study's synthetic world (``analysis.simulate``), whose
technology (b_l, b_k) and productivity omega are known.

The world follows ACF timing (labor chosen at t - 1/2 with partial adjustment, capital from
last year's investment) with Leontief materials whose ratio to value added differs by
industry, industry productivity levels, a common TFP trend and certification shifting
productivity. So the study's specification is: year effects, industry (x year) effects in the
proxy function and the law of motion (``group_effects``), lagged certification in the law of
motion (``markov_controls``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.panel import add_outcomes
from analysis.tfp import MultipleRootsWarning, estimate_production

SPEC = dict(
    output="log_value_added", free="log_labor", state="log_capital", proxy="log_materials",
    unit="firm_id", time="year", time_effects=True, group_effects="industry_code", se="none",
)


@pytest.fixture(scope="module")
def world_panel(default_world):
    """The default world's panel with logs, the certification indicator and the true omega."""
    panel = add_outcomes(default_world.panel)
    cohort = panel["cohort"].fillna(0)
    panel["certified"] = ((cohort > 0) & (panel["year"] >= cohort)).astype(float)
    latent = panel[["firm_id", "year"]].merge(default_world.latent, on=["firm_id", "year"], how="left")
    panel["true_omega"] = latent["omega"].to_numpy()
    return panel


def test_acf_recovers_world_technology_and_productivity(world_panel, default_world):
    """ACF with the study's specification recovers the world's elasticities within 0.03 and
    its log TFP (without first-stage noise) correlates above 0.9 with the true omega."""
    truth = default_world.params["production"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultipleRootsWarning)
        fit = estimate_production(world_panel, method="acf", markov_controls=["certified"], exclude_noise=True, **SPEC)
    est = fit.coef()
    assert est["log_labor"] == pytest.approx(truth["b_l"], abs=0.03)
    assert est["log_capital"] == pytest.approx(truth["b_k"], abs=0.03)
    ok = fit.tfp.notna()
    assert np.corrcoef(fit.tfp[ok], world_panel.loc[ok, "true_omega"])[0, 1] > 0.9


def test_lp_first_stage_cannot_identify_labor_in_world(world_panel):
    """The world's materials are Leontief in value added, so LP's first stage leaves no
    variation to identify labor (ACF 2015, Section 3): b_l ~ 0. A check that the world and
    the estimators agree on what they simulate."""
    est = estimate_production(world_panel, method="lp", **SPEC).coef()
    assert abs(est["log_labor"]) < 0.05
