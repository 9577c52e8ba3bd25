"""Production functions and firm TFP: OLS, FE, Olley-Pakes, Levinsohn-Petrin, ACF, Wooldridge, GNR.

One door, :func:`estimate_production`, returns a :class:`ProductionResult` (an
:class:`~analysis.results.EstimationResult`): ``.tidy()`` has one row per input (``term`` = the
input's column, ``outcome`` = the output column, ``estimator`` = the method), ``.tfp`` is log
TFP aligned to the rows of ``data``, ``.roots`` lists every distinct second-stage solution (ACF,
OP, LP), ``.elasticities`` the output elasticities per row, ``.returns_to_scale`` their sum.

The package, one file per method family:

==================  ===========================================================================
``estimate``        the door: option and data checks, groups, bootstrap, the result
``core``            option types (``Literal``), the one option validator, what a fitter returns
``arrays``          the cleaned panel arrays, gap-respecting lags, polynomials, absorbed OLS
``gmm``             the law of motion concentrated out, the multi-start moment solver
``roots``           first stage, second-stage problems and the root search shared by the two-step methods
``linear``          ols, fe: pooled OLS / firm fixed effects (pyfixest, SE clustered by firm)
``oplp``            op, lp: Olley-Pakes (1996) / Levinsohn-Petrin (2003): ``y = b_f f + phi(k, proxy)``;
                    then ``E[(xi + eps) k_t] = 0`` with ``g`` a polynomial in ``omega_{t-1}``
                    (and the survival probability with the exit correction)
``acf``             acf: Ackerberg-Caves-Frazer (2015): ``phi = E[y | l, k, m]``;
                    ``E[xi (l_{t-1}, k_t)] = 0``; multi-start root search
``wooldridge``      wrdg: Wooldridge (2009): the two equations in one GMM problem, the proxy
                    polynomial's coefficients shared, efficient two-step weight, clustered SE
``gnr``             gnr: Gandhi-Navarro-Rivers (2020): share regression for the flexible input's
                    elasticity, integrate it, then ``E[eta * C-terms] = 0``
==================  ===========================================================================

Each fitter ``fit_<family>(panel, opt, start=None, boot=False)`` takes the cleaned
:class:`~analysis.tfp.arrays.PanelData` and returns a :class:`~analysis.tfp.core.CoreFit`:
coefficients (or mean elasticities, ordered free inputs, then state inputs, GNR: then the flexible
input), log TFP for every row, diagnostics and its own metadata. ``boot=True`` is the call made
inside the firm bootstrap: every stage is re-run, but the second stage starts from ``start`` (the
point estimate) instead of searching the whole grid again.

Conventions
-----------
- Value added methods (ols, fe, op, lp, acf, wrdg) are Cobb-Douglas in logs; ``gnr`` is the
  nonparametric gross-output estimator (its coefficients are mean elasticities).
- Lags respect gaps: the lag of year t is year t-1 of the same firm or missing
  (:func:`analysis.tfp.arrays.lag_index`); a firm-year whose previous year is absent enters the
  first stage (and gets a TFP) but not the second stage's moments.
- Log TFP is ``output - sum_j b_j input_j`` (intercept and, for ``fe``, the firm effect kept);
  ``exclude_noise=True`` also removes the first-stage noise ``eps`` (proxy methods), i.e. it
  returns ``omega``. ``.first_stage_noise`` holds ``eps``.
- ``time_effects=True``: year dummies in the first stage and year shifters in the law of motion
  ``omega_t = g(omega_{t-1}) + delta_t + xi_t`` (year FE for ols/fe), so a common TFP trend is
  not attributed to the inputs.
- ``group_effects="industry_code"``: industry (x year) effects in the first stage and in the law
  of motion, with coefficients common to all industries. Proxy methods need it when the
  materials intensity differs by industry (the proxy inversion then differs by industry).
- ``markov_controls=[...]``: variables at t-1 that shift the law of motion, linearly and
  interacted with ``omega_{t-1}`` (De Loecker 2013, "Detecting learning by exporting", uses
  export status this way; here: certification status). They also enter the first stage.
- ``exit`` (op, lp): Olley-Pakes selection correction, a survival probit on a polynomial in
  (state, proxy) at t-1 whose prediction enters ``g``.
- Standard errors: firm-clustered analytic (ols, fe: pyfixest CRV1; wrdg: GMM sandwich), or a
  firm bootstrap (every stage re-run on firms drawn with replacement; default for op, lp,
  acf, gnr). The ACF/OP/LP roots of each draw are found from the point estimate.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"firm_id": np.repeat(np.arange(300), 4), "year": np.tile(np.arange(2010, 2014), 300),
...                    "l": rng.normal(size=1200), "k": rng.normal(size=1200)})
>>> df["y"] = 0.6 * df["l"] + 0.4 * df["k"] + rng.normal(scale=0.1, size=1200)
>>> estimate_production(df, "y", "l", "k", method="fe").coef().round(1).to_dict()
{'l': 0.6, 'k': 0.4}
"""

from analysis.tfp.arrays import lag_index, panel_lag
from analysis.tfp.core import METHODS, Method, MultipleRootsWarning, OPLPObjective, RootRule, StandardErrors
from analysis.tfp.estimate import ProductionResult, estimate_production

__all__ = [
    "estimate_production",
    "ProductionResult",
    "MultipleRootsWarning",
    "METHODS",
    "Method",
    "StandardErrors",
    "RootRule",
    "OPLPObjective",
    "panel_lag",
    "lag_index",
]
