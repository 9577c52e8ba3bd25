"""The Monte Carlo design of Ackerberg, Caves and Frazer (2015, Econometrica 83(6), Section 5).

Written from the paper's description (Section 5 and Appendix 7.3) and the published
parameter values, as replicated by the R package ``prodest`` (``panelSim``; Rovigatti 2017,
vignette Table 2). Nothing here is copied from either; the investment rule is re-derived below.

Model (per firm i, period t; logs lower case)::

    y_t   = b_l l_t + b_k k_t + omega_t + eps_t          b_l = 0.6, b_k = 0.4, sd(eps) = 0.1
    omega : AR(1), rho = 0.7, stationary sd 0.3, split into two half steps
            omega_{t-b} = rho^(1-b) omega_{t-1} + e1,  omega_t = rho^b omega_{t-b} + e2
    ln w  : AR(1), rho_w = 0.3, stationary sd 0.1 (DGP1, DGP3) or 0 (DGP2)
    labor : chosen at t-b with information omega_{t-b} (b = 0.5 in DGP1/3, 0 in DGP2)
            l*_t = [sd(e2)^2/2 + ln b_l - ln w_t + rho^b omega_{t-b} + b_k k_t] / (1 - b_l)
            observed l_t = l*_t + u_t, sd(u) = 0 (DGP1) or 0.37 (DGP2, DGP3) ("optimisation error")
    materials (Leontief in value added, "planned" input): m_t = b_l l*_t + b_k k_t + omega_t,
            observed with classical error whose variance is 0 / 0.1 / 0.2 / 0.5 of var(m)
    capital: K_{t+1} = (1 - delta) K_t + I_t, delta = 0.2

Investment. With b_l + b_k = 1 expected period profit is linear in K, so the marginal value of
capital does not depend on K and, with the quadratic adjustment cost b_i I^2 / 2 (1/b_i
log-normal with sd 0.6 across firms, as in ACF), the optimal investment is the discounted sum of
expected marginal profits divided by b_i::

    I_t = (1/b_i) C sum_{s>=1} beta^s (1-delta)^(s-1)
              E_t[ exp(rho^b omega_{t+s-b} / (1-b_l)) ] E_t[ w_{t+s}^(-b_l/(1-b_l)) ]

with beta = 0.95 and the conditional expectations of log-normal variables in closed form
(omega_{t+s-b} | omega_t ~ N(rho^(s-b) omega_t, 0.3^2 (1 - rho^(2(s-b))));
ln w_{t+s} | ln w_t ~ N(rho_w^s ln w_t, sd_w^2 (1 - rho_w^(2s)))). C collects the constants of
expected profit under the optimisation error. The sum is truncated at 100 terms
((beta (1-delta))^100 < 1e-11). This is the exact policy of the model as described, not an
approximation; prodest's ``panelSim`` evaluates the same series with slightly different
variance terms, which changes only the level of investment, not its dependence on
(omega, w).

The panel runs 100 periods from K = 0 and the last 10 are kept (as in ACF), so capital is in its
ergodic distribution. Expected pattern (prodest vignette Table 2, 1,000 replications of N=1,000
firms x T=10): ACF recovers (0.6, 0.4) in every DGP; LP is consistent in DGP2 without measurement
error and collapses to b_l ~ 0 in DGP1 (labor is then a deterministic function of (k, m)).

Examples
--------
>>> df = simulate_acf(dgp=2, n_firms=50, seed=1)
>>> list(df.columns[:6]), len(df)
(['firm', 'year', 'y', 'l', 'k', 'm'], 500)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["simulate_acf", "olley_pakes_exit", "TRUE_BL", "TRUE_BK", "DGP_SETTINGS"]

TRUE_BL = 0.6
TRUE_BK = 0.4

# (sd of stationary log wage, timing b of the labor choice, sd of labor optimisation error)
DGP_SETTINGS: dict[int, tuple[float, float, float]] = {
    1: (0.1, 0.5, 0.0),
    2: (0.0, 0.0, 0.37),
    3: (0.1, 0.5, 0.37),
}


def simulate_acf(
    dgp: int = 1,
    n_firms: int = 1000,
    n_periods: int = 10,
    *,
    meas_error: float = 0.0,
    seed: int = 0,
    burn_in: int = 90,
    b_l: float = TRUE_BL,
    b_k: float = TRUE_BK,
    rho: float = 0.7,
    sd_omega: float = 0.3,
    sd_eps: float = 0.1,
    rho_w: float = 0.3,
    delta: float = 0.2,
    beta: float = 0.95,
    sd_adjust: float = 0.6,
    horizon: int = 100,
    tfp_trend: float = 0.0,
    policy_effect: float = 0.0,
) -> pd.DataFrame:
    """Simulate one ACF (2015) Monte Carlo panel.

    Parameters
    ----------
    dgp
        1 (wage shocks, labor chosen at t-0.5), 2 (labor optimisation error) or 3 (both).
    n_firms, n_periods
        Panel size kept after the burn-in (ACF: 1,000 x 10).
    meas_error
        Variance of the classical error added to log materials, as a share of var(m).
    seed
        Seed of the NumPy generator; same seed, same panel.
    burn_in
        Periods simulated and dropped before the kept ones (ACF: 90).
    tfp_trend
        Extension (not in ACF): a common productivity drift, ``omega_t`` gets
        ``tfp_trend * (t - first kept period)`` added in the kept periods, so all firms'
        productivity trends together (checks ``time_effects``).
    policy_effect
        Extension: an absorbing binary "certification" ``d`` that shifts the law of motion,
        ``omega_t = rho omega_{t-1} + policy_effect * d_{t-1} + xi_t``. Half of the firms, those
        with the lowest adjustment cost (hence the most capital), adopt at a random kept period
        (checks ``markov_controls``). Returned as column ``d``.

    Returns
    -------
    pandas.DataFrame
        Columns ``firm, year, y, l, k, m, i, omega, eps, d`` (logs; ``i`` log investment,
        ``omega`` true productivity, ``d`` the policy of ``policy_effect``); ``attrs`` holds
        the true coefficients.
    """
    if dgp not in DGP_SETTINGS:
        raise ValueError(f"dgp must be 1, 2 or 3, got {dgp!r}")
    sd_w, b, sd_opt = DGP_SETTINGS[dgp]
    rng = np.random.default_rng(seed)
    n_total = burn_in + n_periods
    rho_a, rho_b = rho ** (1 - b), rho**b
    sd_e1 = sd_omega * np.sqrt(1 - rho_a**2)
    sd_e2 = sd_omega * np.sqrt(1 - rho_b**2)
    sd_ew = sd_w * np.sqrt(1 - rho_w**2)

    # Extensions (off by default; drawn from a separate stream so the ACF design is unchanged).
    ext = np.random.default_rng([seed, 2015])
    drift = np.zeros(n_total)
    drift[burn_in:] = tfp_trend * np.arange(n_periods)
    firm_type = ext.normal(size=n_firms)
    adopt = np.where(firm_type > np.median(firm_type), burn_in + ext.integers(1, n_periods, n_firms), n_total + 1)
    policy = (np.arange(n_total)[None, :] >= adopt[:, None]).astype(float)

    # Exogenous states: omega at t-1 -> t-b -> t, and log wages, started in their stationary law.
    omega_prev = rng.normal(0, sd_omega, n_firms)
    lnw_prev = rng.normal(0, sd_w, n_firms) if sd_w > 0 else np.zeros(n_firms)
    omega_b = np.empty((n_firms, n_total))
    omega = np.empty((n_firms, n_total))
    lnw = np.empty((n_firms, n_total))
    for t in range(n_total):
        omega_b[:, t] = rho_a * omega_prev + rng.normal(0, sd_e1, n_firms) if sd_e1 > 0 else rho_a * omega_prev
        omega[:, t] = rho_b * omega_b[:, t] + (rng.normal(0, sd_e2, n_firms) if sd_e2 > 0 else 0.0)
        omega[:, t] += (drift[t] - (drift[t - 1] * rho if t > 0 else 0.0)) if tfp_trend else 0.0
        if policy_effect and t > 0:
            omega[:, t] += policy_effect * policy[:, t - 1]
        lnw[:, t] = rho_w * lnw_prev + (rng.normal(0, sd_ew, n_firms) if sd_ew > 0 else 0.0)
        omega_prev, lnw_prev = omega[:, t], lnw[:, t]

    # Investment policy (module docstring): a function of (omega_t, ln w_t) and the firm's cost.
    a_om = rho_b / (1 - b_l)
    a_w = -b_l / (1 - b_l)
    s = np.arange(1, horizon + 1)
    lag_om = s - b  # omega_{t+s-b} is s-b periods ahead of omega_t
    weight = beta**s * (1 - delta) ** (s - 1)
    var_om = sd_omega**2 * (1 - rho ** (2 * lag_om))
    var_w = sd_w**2 * (1 - rho_w ** (2 * s))
    log_weight = np.log(weight) + 0.5 * a_om**2 * var_om + 0.5 * a_w**2 * var_w
    bracket = b_l ** (b_l / (1 - b_l)) * np.exp(0.5 * b_l**2 * sd_opt**2) - b_l ** (1 / (1 - b_l)) * np.exp(
        0.5 * sd_opt**2
    )
    const = (b_k / (1 - b_l)) * bracket * np.exp(0.5 * sd_e2**2 / (1 - b_l))
    inv_cost = np.exp(rng.normal(0, sd_adjust, n_firms))  # 1 / b_i
    if policy_effect:  # adopters are the low-cost (high-investment, high-capital) firms
        inv_cost = np.exp(sd_adjust * (0.8 * firm_type + 0.6 * rng.normal(size=n_firms)))
    coef_om = a_om * rho**lag_om  # (S,)
    coef_w = a_w * rho_w**s
    invest = np.empty((n_firms, n_total))
    for t in range(n_total):
        expo = np.outer(omega[:, t], coef_om) + np.outer(lnw[:, t], coef_w) + log_weight
        invest[:, t] = inv_cost * const * np.exp(expo).sum(axis=1)

    capital = np.empty((n_firms, n_total))
    capital[:, 0] = 1e-12
    for t in range(1, n_total):
        capital[:, t] = (1 - delta) * capital[:, t - 1] + invest[:, t - 1]
    lnk = np.log(capital)

    l_star = (0.5 * sd_e2**2 + np.log(b_l) - lnw + rho_b * omega_b + b_k * lnk) / (1 - b_l)
    l_obs = l_star + (rng.normal(0, sd_opt, l_star.shape) if sd_opt > 0 else 0.0)
    eps = rng.normal(0, sd_eps, l_star.shape)
    y = b_l * l_obs + b_k * lnk + omega + eps
    m = b_l * l_star + b_k * lnk + omega

    keep = slice(burn_in, n_total)
    m_kept = m[:, keep]
    if meas_error > 0:
        m_kept = m_kept + rng.normal(0, np.sqrt(meas_error * m_kept.var()), m_kept.shape)
    out = pd.DataFrame(
        {
            "firm": np.repeat(np.arange(1, n_firms + 1), n_periods),
            "year": np.tile(np.arange(1, n_periods + 1), n_firms),
            "y": y[:, keep].ravel(),
            "l": l_obs[:, keep].ravel(),
            "k": lnk[:, keep].ravel(),
            "m": m_kept.ravel(),
            "i": np.log(invest[:, keep]).ravel(),
            "omega": omega[:, keep].ravel(),
            "eps": eps[:, keep].ravel(),
            "d": policy[:, keep].ravel(),
        }
    )
    out.attrs.update({"b_l": b_l, "b_k": b_k, "dgp": dgp, "meas_error": meas_error, "seed": seed})
    return out


def olley_pakes_exit(df: pd.DataFrame, threshold: float = -0.3, slope: float = 0.5) -> pd.DataFrame:
    """Extension: Olley-Pakes (1996) attrition on a simulated panel.

    A firm stays in period t only if ``omega_t >= threshold - slope * (k_t - mean k)`` (larger
    firms survive lower productivity); from the first period where this fails (after the first
    kept period) the firm is gone. Survivors are then selected on ``omega_t``, hence on
    ``xi_t``, in a way that depends on ``k_t``: the selection bias the exit correction removes.

    Examples
    --------
    >>> df = simulate_acf(dgp=2, n_firms=200, seed=3)
    >>> len(olley_pakes_exit(df)) < len(df)
    True
    """
    df = df.sort_values(["firm", "year"])
    fail = (df["omega"] < threshold - slope * (df["k"] - df["k"].mean())) & (df["year"] > df["year"].min())
    first_fail = df["year"].where(fail).groupby(df["firm"]).transform("min")
    return df[first_fail.isna() | (df["year"] < first_fail)].reset_index(drop=True)
