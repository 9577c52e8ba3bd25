"""Power of pre-trend tests against a linear violation of parallel trends (Roth 2022).

Roth (2022, "Pretest with caution", AER: Insights): a pre-trend test that fails to reject is
reassuring only if it would have detected the violations that matter. Given an event study's
pre-period coefficients and their covariance, :func:`pretrend_power` computes the probability
that the pre-test rejects when the true differential trend is ``delta`` (for the pre-periods), and
:func:`slope_for_power` the slope ``gamma`` of the linear trend ``delta_e = gamma (e - reference)``
that the test detects with a given probability. Two tests:

* ``test="any"``: reject if any pre-period coefficient is individually significant at ``alpha``
  (the test of Roth's paper and of his R package ``pretrends``);
* ``test="wald"``: the joint Wald test of all pre-period coefficients (chi-squared; its power is a
  noncentral chi-squared tail).

:func:`pretrend_diagnostics` adds the Bayes factor ``P(pass | delta) / P(pass | 0)`` and the
likelihood ratio of the observed pre-period coefficients under ``delta`` and under parallel trends,
as ``pretrends::pretrends`` reports them, and the bias the trend implies for each post-period
coefficient (``delta`` extended to the post-periods).

Reference: the He and Wang (2017) example of the ``pretrends`` README, extracted with
``tests/reference/pretrends_hewang.py``: slope for 50 % power 0.05205871, power 0.4999776,
Bayes factor 0.56901, likelihood ratio 0.1057627 (``tests/test_robustness.py``).

Examples
--------
>>> import numpy as np
>>> sigma = np.diag([0.01, 0.01, 0.01])
>>> round(pretrend_power(sigma, np.zeros(3)), 3)  # size of the "any significant" test: 1 - 0.95^3
0.143
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

__all__ = ["event_study_arrays", "pretrend_diagnostics", "pretrend_power", "slope_for_power"]


def _pass_probability(sigma: np.ndarray, mean: np.ndarray, alpha: float) -> float:
    """P(|b_j / se_j| <= z for all j) for b ~ N(mean, sigma)."""
    se = np.sqrt(np.diag(sigma))
    z = stats.norm.ppf(1 - alpha / 2)
    if sigma.shape[0] == 1:
        s = se[0]
        return float(stats.norm.cdf(z * s, mean[0], s) - stats.norm.cdf(-z * s, mean[0], s))
    mvn = stats.multivariate_normal(mean=mean, cov=sigma, allow_singular=True, maxpts=100_000 * sigma.shape[0], abseps=1e-5, releps=1e-5)
    return float(mvn.cdf(z * se, lower_limit=-z * se, rng=np.random.default_rng(0)))


def pretrend_power(sigma_pre: np.ndarray, delta_pre: np.ndarray, *, alpha: float = 0.05, test: str = "any") -> float:
    """Probability that the pre-test rejects when the pre-period coefficients have mean ``delta_pre``.

    Parameters
    ----------
    sigma_pre : numpy.ndarray
        Covariance of the pre-period coefficients (reference period excluded).
    delta_pre : numpy.ndarray
        Their mean under the hypothesised violation.
    alpha : float
        Level of the test (each coefficient's, for ``test="any"``).
    test : {"any", "wald"}
        ``"any"`` (any individually significant) or ``"wald"`` (joint chi-squared test).
    """
    sigma = np.atleast_2d(np.asarray(sigma_pre, dtype=float))
    delta = np.atleast_1d(np.asarray(delta_pre, dtype=float))
    if sigma.shape != (delta.size, delta.size):
        raise ValueError(f"sigma_pre is {sigma.shape} but delta_pre has {delta.size} entries")
    if test == "any":
        return 1.0 - _pass_probability(sigma, delta, alpha)
    if test == "wald":
        k = int(np.linalg.matrix_rank(sigma))
        ncp = float(delta @ np.linalg.pinv(sigma) @ delta)
        crit = stats.chi2.ppf(1 - alpha, k)
        return float(stats.ncx2.sf(crit, k, ncp)) if ncp > 0 else float(stats.chi2.sf(crit, k))
    raise ValueError(f"test must be 'any' or 'wald', got {test!r}")


def slope_for_power(
    sigma_pre: np.ndarray,
    t_pre: Sequence[float],
    *,
    reference: float = -1,
    power: float = 0.5,
    alpha: float = 0.05,
    test: str = "any",
) -> float:
    """The slope ``gamma > 0`` of ``delta_e = gamma (e - reference)`` the pre-test detects with probability ``power``.

    ``pretrends::slope_for_power`` for ``test="any"``. The power of a linear trend is symmetric in
    the sign of the slope, so the slope is returned as a magnitude.
    """
    t = np.asarray(t_pre, dtype=float) - reference
    sigma = np.atleast_2d(np.asarray(sigma_pre, dtype=float))
    size = pretrend_power(sigma, np.zeros(t.size), alpha=alpha, test=test)
    if not size < power < 1:
        raise ValueError(f"power must lie between the test's size ({size:.3f}) and 1, got {power}")
    hi = float(np.sqrt(np.max(np.diag(sigma)))) / max(np.min(np.abs(t[t != 0])), 1e-12)
    while pretrend_power(sigma, hi * t, alpha=alpha, test=test) < power:
        hi *= 2
    return float(optimize.brentq(lambda g: pretrend_power(sigma, g * t, alpha=alpha, test=test) - power, 0.0, hi, xtol=1e-6 * hi, rtol=1e-6))


def pretrend_diagnostics(
    beta: np.ndarray,
    sigma: np.ndarray,
    t_vec: Sequence[float],
    delta: np.ndarray,
    *,
    reference: float = -1,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Power, Bayes factor and likelihood ratio of a hypothesised violation ``delta`` (``pretrends::pretrends``).

    ``beta``, ``sigma`` and ``delta`` cover all event times of ``t_vec`` (pre and post, reference
    excluded); the test and the ratios use the pre-periods (``t < reference``).
    """
    t = np.asarray(t_vec, dtype=float)
    beta, delta, sigma = np.asarray(beta, float), np.asarray(delta, float), np.asarray(sigma, float)
    pre = t < reference
    s_pre, b_pre, d_pre = sigma[np.ix_(pre, pre)], beta[pre], delta[pre]
    p_pass_delta = _pass_probability(s_pre, d_pre, alpha)
    p_pass_zero = _pass_probability(s_pre, np.zeros(pre.sum()), alpha)
    inv = np.linalg.pinv(s_pre)
    log_lr = -0.5 * (b_pre - d_pre) @ inv @ (b_pre - d_pre) + 0.5 * b_pre @ inv @ b_pre
    return {
        "power": 1.0 - p_pass_delta,
        "bayes_factor": p_pass_delta / p_pass_zero,
        "likelihood_ratio": float(np.exp(log_lr)),
        "bias_post": dict(zip(t[~pre].tolist(), delta[~pre].tolist())),
    }


def event_study_arrays(es: Any, reference: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Event times, coefficients and covariance of an event-study result, sorted, reference row removed.

    The result needs ``event_time`` rows and a ``vcov`` over them, normalised to a reference
    period (``es.meta["reference_period"]``, -1 by default; a row at it must be an exact zero).
    Returns ``(event_times, beta, sigma, reference)``.
    """
    tab = es.tidy()
    tab = tab[tab["event_time"].notna()].sort_values("event_time")
    if es.vcov is None or tab.empty:
        raise ValueError("need an event study with event_time rows and a covariance matrix")
    ref = reference if reference is not None else es.meta.get("reference_period", -1)
    if ref is None:
        raise ValueError("the event study is not normalised to a reference period; pass reference= or use a universal base period")
    e = tab["event_time"].to_numpy(dtype=float)
    b = tab["estimate"].to_numpy(dtype=float)
    V = es.vcov.loc[tab["term"], tab["term"]].to_numpy(dtype=float)
    keep = e != ref
    if (~keep).any() and not (np.allclose(b[~keep], 0) and np.allclose(np.nan_to_num(np.diag(V)[~keep]), 0)):
        raise ValueError(f"the event study has an estimated coefficient at its reference period {ref}")
    return e[keep], b[keep], V[np.ix_(keep, keep)], int(ref)
