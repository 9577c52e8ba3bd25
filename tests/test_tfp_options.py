"""The options the study needs, each checked on a simulation where it matters: year effects
against a common productivity trend, a Markov control (certification-like policy that shifts
the law of motion), and the Olley-Pakes exit correction against attrition on productivity.

The designs extend the ACF (2015) Monte Carlo (``tests/acf_dgp.py``); each test shows the
estimate is biased without the option and within 0.03 of the truth with it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.tfp import MultipleRootsWarning, estimate_production

from acf_dgp import TRUE_BK, TRUE_BL, olley_pakes_exit, simulate_acf

KW = dict(unit="firm", time="year", se="none")


def _acf(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MultipleRootsWarning)
        return estimate_production(df, "y", "l", "k", "m", method="acf", **KW, **kw).coef()


def test_time_effects_remove_common_trend_bias():
    """All firms' productivity drifts up by 0.2 a year (``tfp_trend``). The drift is not a
    function of omega_{t-1}, so without year shifters it lands in xi and, since capital grows
    with it, biases b_k (0.47 here); with ``time_effects=True`` ACF recovers (0.6, 0.4)."""
    df = simulate_acf(1, 5000, seed=21, tfp_trend=0.2)
    without = _acf(df)
    with_te = _acf(df, time_effects=True)
    assert abs(without["k"] - TRUE_BK) > 0.05
    assert with_te["l"] == pytest.approx(TRUE_BL, abs=0.03)
    assert with_te["k"] == pytest.approx(TRUE_BK, abs=0.03)


def test_markov_control_shifts_law_of_motion():
    """A policy d (adopted by the high-capital half of firms at random dates) raises next
    year's productivity by 0.2: omega_t = 0.7 omega_{t-1} + 0.2 d_{t-1} + xi_t (De Loecker
    2013's g(omega_{t-1}, d_{t-1})). Omitting d from g biases b_k upwards; with
    ``markov_controls="d"`` ACF recovers the truth."""
    df = simulate_acf(1, 5000, seed=22, policy_effect=0.2)
    without = _acf(df)
    with_d = _acf(df, markov_controls="d")
    assert without["k"] - TRUE_BK > 0.05
    assert with_d["l"] == pytest.approx(TRUE_BL, abs=0.03)
    assert with_d["k"] == pytest.approx(TRUE_BK, abs=0.03)


def test_exit_correction_removes_selection_bias():
    """Firms leave for good when omega_t < -0.3 - 0.5 (k_t - mean k) (``olley_pakes_exit``;
    38 % of firm-years lost). Survivors are selected on xi_t more strongly at low capital, which
    biases LP's b_k down (to about 0.2); the survival-probit correction (``exit=True``, exit
    inferred from the panel) brings it back within 0.03 of 0.4. DGP2, where LP is consistent."""
    df = olley_pakes_exit(simulate_acf(2, 3000, seed=1), threshold=-0.3, slope=0.5)
    kw = dict(method="lp", **KW)
    without = estimate_production(df, "y", "l", "k", "m", **kw).coef()
    corrected = estimate_production(df, "y", "l", "k", "m", exit=True, **kw).coef()
    assert TRUE_BK - without["k"] > 0.1
    assert corrected["l"] == pytest.approx(TRUE_BL, abs=0.03)
    assert corrected["k"] == pytest.approx(TRUE_BK, abs=0.03)


def test_exit_column_equals_inferred_exit():
    """``exit="col"`` with a 0/1 column built the documented way (1 in a firm's last year
    before the panel ends, missing in the final year) gives the same estimate as
    ``exit=True``, for LP and for OP (investment proxy)."""
    df = olley_pakes_exit(simulate_acf(2, 600, seed=2))
    last = df.groupby("firm")["year"].transform("max")
    df["exits"] = (df["year"] == last).astype(float)
    df.loc[df["year"] == df["year"].max(), "exits"] = np.nan
    a = estimate_production(df, "y", "l", "k", "m", method="lp", exit=True, **KW).coef()
    b = estimate_production(df, "y", "l", "k", "m", method="lp", exit="exits", **KW).coef()
    np.testing.assert_allclose(a, b)
    op_inferred = estimate_production(df, "y", "l", "k", "i", method="op", exit=True, **KW).coef()
    op_column = estimate_production(df, "y", "l", "k", "i", method="op", exit="exits", **KW).coef()
    assert np.all(np.isfinite(op_column))
    np.testing.assert_allclose(op_inferred, op_column)
