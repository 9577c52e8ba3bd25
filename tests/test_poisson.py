"""The count models of analysis.did.poisson: the extended TWFE Poisson's average and its standard error.

``etwfe_poisson`` estimates the treated-observation weighted mean of the (cohort, period) cell
coefficients directly, by reparametrising the cell dummies. Checked against the textbook route on
the same data: the model with one dummy per cell (statsmodels' GLM Poisson with unit and year
dummies for the estimates; pyfixest's fit of the same model for the clustered covariance), then
the weighted mean and its delta-method standard error ``sqrt(w' V w)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.did import etwfe_poisson


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    """80 firms x 6 years, cohorts 2017 and 2019 and never treated, effects growing with exposure."""
    rng = np.random.default_rng(11)
    n, T = 80, 6
    d = pd.DataFrame({"firm_id": np.repeat(np.arange(n), T), "year": np.tile(np.arange(2015, 2015 + T), n)})
    d["cohort"] = np.repeat(rng.choice([0, 2017, 2019], n), T)
    d["cell_id"] = d["firm_id"] // 4
    e = np.where(d["cohort"] > 0, d["year"] - d["cohort"], -1)
    lam = np.exp(0.3 + np.repeat(rng.normal(0, 0.5, n), T) + 0.05 * (d["year"] - 2015) + np.where(e >= 0, 0.2 + 0.1 * e, 0.0))
    d["y"] = rng.poisson(lam)
    return d


def _cells(d):
    g, t = d["cohort"].to_numpy(), d["year"].to_numpy()
    treated = (g > 0) & (t >= g)
    cells = sorted({(int(a), int(b)) for a, b in zip(g[treated], t[treated])})
    dummies = pd.DataFrame({f"gt_{a}_{b}": ((g == a) & (t == b)).astype(float) for a, b in cells})
    w = dummies.sum().to_numpy()
    return dummies, w / w.sum()


def test_average_equals_weighted_cell_coefficients_of_glm(counts):
    """The estimate equals sum_c w_c b_c with b_c from GLM Poisson on cell, firm and year dummies (1e-6)."""
    dummies, w = _cells(counts)
    fe = pd.get_dummies(counts[["firm_id", "year"]].astype(str), drop_first=True, dtype=float)
    ref = sm.GLM(counts["y"], sm.add_constant(pd.concat([dummies, fe], axis=1)), family=sm.families.Poisson()).fit()
    ours = etwfe_poisson(counts, "y", "firm_id", "year", "cohort", cluster="cell_id")
    assert float(ours.coef()["ATT"]) == pytest.approx(float(w @ ref.params[dummies.columns].to_numpy()), abs=1e-6)
    assert [c["weight"] for c in ours.meta["cells"]] == pytest.approx(list(w))


def test_standard_error_equals_delta_method_on_the_cell_model(counts):
    """The clustered standard error equals sqrt(w' V w) with V the CRV1 covariance of the cell coefficients (1e-6 relative)."""
    import pyfixest as pf

    dummies, w = _cells(counts)
    data = pd.concat([counts, dummies], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.fepois(f"y ~ {' + '.join(dummies.columns)} | firm_id + year", data=data, vcov={"CRV1": "cell_id"})
    idx = [list(fit.coef().index).index(c) for c in dummies.columns]
    V = np.asarray(fit._vcov)[np.ix_(idx, idx)]  # the test reads the reference's covariance; the estimator does not
    ours = etwfe_poisson(counts, "y", "firm_id", "year", "cohort", cluster="cell_id")
    assert float(ours.se()["ATT"]) == pytest.approx(float(np.sqrt(w @ V @ w)), rel=1e-6)
