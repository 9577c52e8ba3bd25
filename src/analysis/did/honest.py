"""HonestDiD sensitivity analysis (Rambachan and Roth 2023, "A More Credible Approach to Parallel
Trends", Review of Economic Studies) for any event-study result or raw coefficients.

Given event-study coefficients ``betahat`` (pre-treatment, then post-treatment, the reference
period left out) and their covariance, :func:`honest_did` returns confidence sets for
``theta = l' tau_post`` that stay valid when parallel trends fail in a bounded way:

* ``restriction="relative_magnitude"`` (Delta^RM): every post-treatment change of the
  differential trend is at most ``Mbar`` times the largest pre-treatment change;
* ``restriction="smoothness"`` (Delta^SD): the slope of the differential trend changes by at
  most ``M`` per period;
* ``restriction="smoothness_relative_magnitude"`` (Delta^SDRM): deviations from a linear trend
  after treatment are at most ``Mbar`` times the largest one before;

each optionally with a sign restriction on the post-treatment bias (``bias_direction``) or a
monotone differential trend (``monotonicity_direction``). Methods: the fixed-length confidence
interval ``"FLCI"`` (smoothness only), the conditional test ``"Conditional"`` (alias ``"ARP"``),
and the hybrids ``"C-LF"`` (least favourable) and ``"C-F"`` (conditional FLCI). The defaults are
the R package's: FLCI for Delta^SD, C-F for Delta^SD with a sign or shape restriction, C-LF for
the relative-magnitude sets; so are the grids of the test inversion (``grid_points``,
``grid_lb``, ``grid_ub`` as R's ``gridPoints``, ``grid.lb``, ``grid.ub``) and the simulated
constants (R's random stream after ``set.seed(seed)``), so the numbers are the R package's
(see tests/test_honest.py for the comparison with its published results).

The implementation is ours (``_honest_deltas``, ``_honest_arp``, ``_honest_flci``): the relative
magnitude sets of a typical event study (a few post periods) enumerate the vertices of the dual of
the test's linear programme once and invert the test on the whole grid with matrix products, in
milliseconds; larger problems solve linear programmes with HiGHS.

Results can be cached on disk (``cache_dir``, chosen by the caller; nothing is written without
it), one JSON file per (inputs, restriction, M, method, grid, seed).

Examples
--------
Raw inputs (the R package's Benzarti-Carloni example has 4 pre- and 4 post-periods):

>>> import numpy as np
>>> beta = np.array([0.01, -0.005, 0.004, 0.0, 0.2, 0.25, 0.3, 0.3])
>>> sigma = np.diag(np.full(8, 0.02 ** 2))
>>> res = honest_did(beta, sigma=sigma, n_pre=4, n_post=4, restriction="smoothness", M=[0, 0.01])
>>> res.tidy()[["term", "method", "conf_low", "conf_high"]].round(3).values.tolist()
[['original', 'Original', 0.161, 0.239], ['M=0', 'FLCI', 0.158, 0.242], ['M=0.01', 'FLCI', 0.151, 0.251]]

An event-study result (any estimator with ``event_time`` rows and a covariance):

>>> import moderndid
>>> from analysis.did.twfe import twfe
>>> ehec = moderndid.load_ehec().to_pandas()
>>> d = ehec[(ehec.year < 2016) & (ehec.yexp2.isna() | (ehec.yexp2 != 2015))]
>>> es = twfe(d, "dins", "stfips", "year", "yexp2", dynamic=True)
>>> rm = honest_did(es, restriction="relative_magnitude", Mbar=[0.5, 1])
>>> rm.tidy()[["Mbar", "conf_low", "conf_high"]].round(4).values.tolist()
[[nan, 0.0285, 0.0644], [0.5, 0.024, 0.0672], [1.0, 0.017, 0.072]]
"""

from __future__ import annotations

import hashlib
import json
import time as _time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.did._honest_deltas import sd_upper_bound_mpre
from analysis.did._honest_sets import (
    METHODS,
    default_method,
    delta_name,
    original_ci,
    robust_set,
)
from analysis.results import EstimationResult, tidy_frame

__all__ = ["event_study_inputs", "honest_did"]

_RESTRICTIONS = {
    "relative_magnitude": "RM", "rm": "RM", "deltarm": "RM", "deviation from parallel trends": "RM",
    "smoothness": "SD", "sd": "SD", "deltasd": "SD",
    "smoothness_relative_magnitude": "SDRM", "sdrm": "SDRM", "deltasdrm": "SDRM", "deviation from linear trend": "SDRM",
}
_FAMILY_NAME = {"RM": "relative_magnitude", "SD": "smoothness", "SDRM": "smoothness_relative_magnitude"}
_VERSION = "2"  # bump when the numbers this module returns change (cache key)


def event_study_inputs(es: EstimationResult, reference: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Event times, coefficients and covariance of an event-study result, ordered by event time.

    Returns ``(event_times, beta, sigma, n_pre)`` without the reference period; rows without an
    event time (an overall ATT) are ignored. A reference row that is exactly zero with zero or
    missing variance is dropped; any other row at the reference period is an error (the
    coefficients must be normalised to it, e.g. a universal base period for Callaway-Sant'Anna).
    """
    tab = es.tidy()
    if "event_time" not in tab or tab["event_time"].isna().all():
        raise ValueError("honest_did needs an event-study result (rows with event_time)")
    if es.vcov is None:
        raise ValueError("honest_did needs the covariance of the event-study coefficients (result.vcov is None)")
    ref = reference
    if ref is None:
        ref = es.meta.get("reference_period", -1)
        if ref is None:
            raise ValueError(
                "this event study is not normalised to a reference period (e.g. imputation with "
                "pretrends=k); re-estimate with pretrends='all' or pass reference="
            )
    ref = int(ref)
    tab = tab[tab["event_time"].notna()].sort_values("event_time")
    terms = tab["term"].tolist()
    missing = [t for t in terms if t not in es.vcov.index]
    if missing:
        raise ValueError(f"vcov has no row for term(s) {missing}")
    V = es.vcov.loc[terms, terms].to_numpy(dtype=float)
    e = tab["event_time"].to_numpy(dtype=np.int64)
    b = tab["estimate"].to_numpy(dtype=float)
    at_ref = e == ref
    if at_ref.any():
        k = int(np.nonzero(at_ref)[0][0])
        if b[k] == 0 and (V[k, k] == 0 or np.isnan(V[k, k])):
            keep = ~at_ref
            e, b, V = e[keep], b[keep], V[np.ix_(keep, keep)]
        else:
            raise ValueError(
                f"the event study has an estimated coefficient at the reference period {ref}; HonestDiD "
                "needs coefficients normalised to it (e.g. a universal base period)"
            )
    pre, post = e[e < ref], e[e > ref]
    if pre.size < 1 or post.size < 1:
        raise ValueError(f"need pre-treatment (< {ref}) and post-treatment (> {ref}) coefficients; event times are {e.tolist()}")
    for name, part in (("pre-treatment", pre), ("post-treatment", post)):
        if part.size > 1 and not np.all(np.diff(part) == 1):
            raise ValueError(f"{name} event times must be consecutive, got {part.tolist()}")
    if not np.all(np.isfinite(b)) or not np.all(np.isfinite(V)):
        raise ValueError("coefficients or covariance contain NaN/inf")
    return e, b, V, int(pre.size)


def _target_vector(target: Any, post_e: np.ndarray) -> tuple[np.ndarray, str]:
    n_post = post_e.size
    if target is None:
        target = int(post_e[0])
    if isinstance(target, str):
        if target != "average":
            raise ValueError(f"target must be an event time, 'average' or weights, got {target!r}")
        return np.full(n_post, 1.0 / n_post), "average of post-treatment coefficients"
    if np.isscalar(target):
        if int(target) not in post_e:
            raise ValueError(f"target event time {target} not among the post-treatment event times {post_e.tolist()}")
        lv = np.zeros(n_post)
        lv[int(np.nonzero(post_e == int(target))[0][0])] = 1.0
        return lv, f"event time {int(target)}"
    lv = np.asarray(target, dtype=float).ravel()
    if lv.size != n_post:
        raise ValueError(f"target weights need {n_post} entries (post-treatment event times {post_e.tolist()})")
    if not np.any(lv != 0):
        raise ValueError("target weights (l_vec) must not be all zero")
    return lv, "weighted post-treatment coefficients"


def _cache_key(payload: dict[str, Any], b: np.ndarray, V: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(payload, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(b, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(V, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def _raw_inputs(betahat, sigma, n_pre, n_post) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    b = np.asarray(betahat, dtype=float).ravel()
    if sigma is None or n_pre is None:
        raise ValueError("raw inputs need betahat, sigma and n_pre (numPrePeriods); n_post defaults to the rest")
    V = np.asarray(sigma, dtype=float)
    n_pre = int(n_pre)
    n_post = b.size - n_pre if n_post is None else int(n_post)
    if V.shape != (b.size, b.size):
        raise ValueError(f"betahat has {b.size} entries but sigma is {V.shape[0]} by {V.shape[1] if V.ndim > 1 else 1}")
    if n_pre + n_post != b.size:
        raise ValueError(f"betahat ({b.size} entries) and n_pre + n_post ({n_pre} + {n_post}) do not conform")
    if n_pre < 1 or n_post < 1:
        raise ValueError("need at least one pre-treatment and one post-treatment coefficient")
    if not np.all(np.isfinite(b)) or not np.all(np.isfinite(V)):
        raise ValueError("betahat or sigma contain NaN/inf")
    asym = float(np.max(np.abs(V - V.T)))
    if asym > 1e-10 * max(1.0, float(np.max(np.abs(V)))):
        warnings.warn(f"sigma is not symmetric (largest asymmetry {asym:g}); using (sigma + sigma') / 2", UserWarning, stacklevel=3)
    V = (V + V.T) / 2
    lam_min = float(np.linalg.eigvalsh(V)[0])
    if lam_min < -1e-10 * max(1.0, float(np.max(np.abs(V)))):
        warnings.warn(f"sigma is not positive semi-definite (smallest eigenvalue {lam_min:g})", UserWarning, stacklevel=3)
    e = np.concatenate([np.arange(-n_pre, 0) - 1, np.arange(n_post)])  # reference -1
    return e, b, V, n_pre


def honest_did(
    result: EstimationResult | Sequence[float] | np.ndarray | None = None,
    restriction: str = "relative_magnitude",
    M: float | Sequence[float] | None = None,
    target: int | str | Sequence[float] | None = None,
    alpha: float = 0.05,
    *,
    Mbar: float | Sequence[float] | None = None,
    method: str | None = None,
    reference: int | None = None,
    monotonicity_direction: str | None = None,
    bias_direction: str | None = None,
    grid_points: int | None = None,
    grid_lb: float | None = None,
    grid_ub: float | None = None,
    seed: int = 0,
    betahat: Sequence[float] | np.ndarray | None = None,
    sigma: np.ndarray | None = None,
    n_pre: int | None = None,
    n_post: int | None = None,
    l_vec: Sequence[float] | None = None,
    numPrePeriods: int | None = None,
    numPostPeriods: int | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> EstimationResult:
    """Robust confidence sets under bounded violations of parallel trends (Rambachan-Roth 2023).

    Parameters
    ----------
    result : EstimationResult or sequence of float or numpy.ndarray, optional
        An event-study :class:`~analysis.results.EstimationResult` (``event_time`` rows and a
        ``vcov``; the reference period, default ``meta['reference_period']`` else -1, is not a
        row), or the coefficient vector itself (then pass ``sigma`` and ``n_pre``).
    restriction : str, default 'relative_magnitude'
        ``"relative_magnitude"`` (Delta^RM), ``"smoothness"`` (Delta^SD) or
        ``"smoothness_relative_magnitude"`` (Delta^SDRM); R's names (``"DeltaRM"``,
        ``"deviation from linear trend"`` ...) are accepted too.
    M, Mbar : float or sequence of float, optional
        The bound(s): ``M`` for smoothness, ``Mbar`` for the relative-magnitude sets (``M`` is
        accepted for them too). ``None``: the R package's default values (10 values up to the
        pre-period upper bound on M, or on [0, 2] for Mbar).
    target : int or str or sequence of float, optional
        ``None``: the first post-treatment coefficient (the R default); an event time;
        ``"average"``; or weights over the post-treatment coefficients (R's ``l_vec``, also
        accepted as ``l_vec=``).
    alpha : float, default 0.05
        1 - confidence level.
    method : str, optional
        ``"FLCI"``, ``"Conditional"`` (or ``"ARP"``), ``"C-F"``, ``"C-LF"``; ``None`` for the R
        package's default (see the module docstring).
    reference : int, optional
        Reference event time of ``result``, if not its ``meta['reference_period']``.
    monotonicity_direction, bias_direction : str, optional
        ``"increasing"`` / ``"decreasing"`` differential trend, or ``"positive"`` /
        ``"negative"`` post-treatment bias (one of the two at most).
    grid_points, grid_lb, grid_ub : int and float, optional
        Grid of the test inversion (R's ``gridPoints``, ``grid.lb``, ``grid.ub``); defaults as R.
    seed : int, default 0
        Seed of R's random stream for the simulated constants (R's ``seed``, default 0).
    betahat, sigma, n_pre, n_post : array-like, array-like, int, int, optional
        Raw inputs (R's ``betahat``, ``sigma``, ``numPrePeriods``, ``numPostPeriods``, also
        accepted under those names): coefficients ordered pre then post, reference left out.
    cache, cache_dir : bool, default True; str or pathlib.Path, optional
        Read and write the sets as JSON files in ``cache_dir`` (no caching without it).

    Returns
    -------
    EstimationResult
        Tidy rows: ``original`` (the conventional CI; ``estimate`` and ``std_error`` only there)
        then one per value of M with the robust ``conf_low``, ``conf_high``; extra columns ``M``,
        ``Mbar`` (the bound under its own name, NaN under the other), ``restriction``, ``delta``
        (R's label, e.g. ``DeltaSDNB``), ``method``, ``event_time`` (the target's, if one).
        ``meta``: ``timings`` (seconds per M, 0 for cache hits), ``cache_hits``, ``num_pre``,
        ``num_post``, ``l_vec``, ``notes`` (open or empty sets, ignored restrictions).
    """
    if numPrePeriods is not None:
        n_pre = numPrePeriods if n_pre is None else n_pre
    if numPostPeriods is not None:
        n_post = numPostPeriods if n_post is None else n_post
    if isinstance(result, EstimationResult):
        if betahat is not None or sigma is not None:
            raise ValueError("pass either an estimation result or betahat/sigma, not both")
        e, b, V, npre = event_study_inputs(result, reference)
        outcome = str(result.table["outcome"].iloc[0])
        estimator = f"honest_did({result.table['estimator'].iloc[0]})"
        n_obs = int(result.table["n_obs"].max())
    else:
        if result is not None and betahat is not None:
            raise ValueError("betahat given twice")
        raw = betahat if result is None else result
        if raw is None:
            raise ValueError("honest_did needs an event-study result or betahat, sigma and n_pre")
        e, b, V, npre = _raw_inputs(raw, sigma, n_pre, n_post)
        outcome, estimator, n_obs = "theta", "honest_did", 0
    T = b.size
    nposts = T - npre
    post_e = e[npre:]
    if l_vec is not None:
        if target is not None:
            raise ValueError("pass target or l_vec, not both")
        target = list(np.asarray(l_vec, dtype=float).ravel())
    lv, target_label = _target_vector(target, post_e)

    key = str(restriction).strip().lower()
    if key not in _RESTRICTIONS:
        raise ValueError(f"restriction must be one of {sorted(set(_FAMILY_NAME.values()))}, got {restriction!r}")
    family = _RESTRICTIONS[key]
    if bias_direction is not None and monotonicity_direction is not None:
        raise ValueError("choose either a sign restriction (bias_direction) or a shape restriction (monotonicity_direction), not both")
    if bias_direction is not None and bias_direction not in ("positive", "negative"):
        raise ValueError(f"bias_direction must be 'positive' or 'negative', got {bias_direction!r}")
    if monotonicity_direction is not None and monotonicity_direction not in ("increasing", "decreasing"):
        raise ValueError(f"monotonicity_direction must be 'increasing' or 'decreasing', got {monotonicity_direction!r}")
    if family in ("RM", "SDRM") and npre < (1 if family == "RM" else 2):
        raise ValueError(f"{_FAMILY_NAME[family]} needs at least {1 if family == 'RM' else 2} pre-treatment coefficients")
    if M is not None and Mbar is not None:
        raise ValueError("pass M or Mbar, not both")
    bound = Mbar if Mbar is not None else M
    if bound is None:
        if family == "SD":
            top = float(np.sqrt(V[0, 0])) if npre == 1 else sd_upper_bound_mpre(b, V, npre, 0.05)
            bound = np.linspace(0.0, top, 10)
        else:
            bound = np.linspace(0.0, 2.0, 10)
    Ms = [float(m) for m in np.atleast_1d(np.asarray(bound, dtype=float))]
    if any(not np.isfinite(m) or m < 0 for m in Ms):
        raise ValueError("M / Mbar must be finite and non-negative")
    if method is None:
        method = default_method(family, bias_direction, monotonicity_direction)
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if family != "SD" and method in ("FLCI", "C-F"):
        raise ValueError("relative-magnitude sets use method 'C-LF' or 'Conditional' (as the R package)")
    if method == "FLCI" and (bias_direction is not None or monotonicity_direction is not None):
        warnings.warn("the FLCI does not use the sign or shape restriction (as in the R package); use method='C-F' to impose it",
                      UserWarning, stacklevel=2)
    points = 1000 if grid_points is None else int(grid_points)
    if points < 2:
        raise ValueError("grid_points must be at least 2")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    delta = delta_name(family, bias_direction, monotonicity_direction)
    target_e = int(post_e[np.argmax(lv)]) if np.count_nonzero(lv) == 1 else None

    folder = Path(cache_dir) if (cache and cache_dir is not None) else None
    notes: list[str] = []
    lbs, ubs, timings, hits = [], [], [], 0
    for m in Ms:
        payload = {
            "family": family, "M": m, "method": method, "alpha": alpha, "l_vec": lv.tolist(), "n_pre": npre,
            "mono": monotonicity_direction, "bias": bias_direction, "grid": [points, grid_lb, grid_ub], "seed": seed,
            "version": _VERSION,
        }
        path = folder / f"{_cache_key(payload, b, V)}.json" if folder is not None else None
        if path is not None and path.is_file():
            got = json.loads(path.read_text())
            lbs.append(float(got["lb"]) if got["lb"] is not None else np.nan)
            ubs.append(float(got["ub"]) if got["ub"] is not None else np.nan)
            notes.extend(f"M={m:g}: {n}" for n in got.get("notes", []))
            timings.append(0.0)
            hits += 1
            continue
        t0 = _time.perf_counter()
        rs = robust_set(b, V, npre, lv, family=family, M=m, method=method, bias=bias_direction,
                        mono=monotonicity_direction, alpha=alpha, grid_points=points, grid_lb=grid_lb,
                        grid_ub=grid_ub, seed=seed)
        timings.append(_time.perf_counter() - t0)
        lbs.append(rs.lb)
        ubs.append(rs.ub)
        notes.extend(f"M={m:g}: {n}" for n in rs.notes if "does not use" not in n)
        if path is not None:
            from analysis.io import write_text

            clean = [None if not np.isfinite(x) else x for x in (rs.lb, rs.ub)]
            write_text(json.dumps({"lb": clean[0], "ub": clean[1], "notes": [n for n in rs.notes if "does not use" not in n],
                                   "payload": payload}), path)
    est, se, crit = original_ci(b, V, npre, lv, alpha)
    k = len(Ms)
    rm_like = family != "SD"
    table = tidy_frame(
        [est, *([np.nan] * k)], [se, *([np.nan] * k)],
        term=["original", *[f"{'Mbar' if rm_like else 'M'}={m:g}" for m in Ms]],
        outcome=outcome, estimator=estimator, n_obs=n_obs, alpha=alpha,
        event_time=target_e,
        M=[np.nan, *Ms], Mbar=[np.nan, *(Ms if rm_like else [np.nan] * k)],
        restriction=_FAMILY_NAME[family], delta=[None, *([delta] * k)], method=["Original", *([method] * k)],
    )
    if not rm_like:
        table["Mbar"] = np.nan
    table.loc[0, ["conf_low", "conf_high"]] = [est - crit * se, est + crit * se]
    table.loc[1:, "conf_low"] = lbs
    table.loc[1:, "conf_high"] = ubs
    table.loc[1:, "p_value"] = np.nan
    for w in notes:
        warnings.warn(w, UserWarning, stacklevel=2)
    return EstimationResult(
        table=table,
        vcov=None,
        meta={
            "restriction": _FAMILY_NAME[family], "delta": delta, "method": method, "target": target_label,
            "l_vec": lv.tolist(), "num_pre": npre, "num_post": nposts, "event_times": e.tolist(),
            "timings": dict(zip(Ms, timings)), "cache_hits": hits, "cache_dir": str(folder) if folder is not None else None,
            "notes": notes, "grid_points": points, "seed": seed,
        },
        title=f"HonestDiD ({delta}, {method}) for {target_label}: {outcome}",
    )
