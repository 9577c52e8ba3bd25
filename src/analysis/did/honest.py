"""HonestDiD sensitivity analysis (Rambachan and Roth 2023) for any event-study result.

A thin wrapper around moderndid's port of the R package HonestDiD
(``moderndid.didhonest.create_sensitivity_results_rm`` / ``_sm`` and ``construct_original_cs``),
which reproduces the R package's published example (see tests/test_honest.py). It takes an
:class:`~analysis.results.EstimationResult` with ``event_time`` rows and a ``vcov`` over them
(TWFE, Sun-Abraham, imputation with ``pretrends="all"``, stacked, Callaway-Sant'Anna with a
universal base period), splits the rows at the reference period (-1, not a row) into pre- and
post-treatment coefficients, and returns robust confidence sets for a target parameter
``theta = l' beta_post`` under

* ``restriction="relative_magnitude"``: post-treatment violations of parallel trends at most
  ``Mbar`` times the largest pre-treatment violation (Delta^RM; conditional least-favourable
  hybrid "C-LF" confidence sets by default, as the R package);
* ``restriction="smoothness"``: the slope of the differential trend changes by at most ``M``
  per period (Delta^SD; fixed-length confidence intervals "FLCI" by default).

Speed. The relative-magnitudes sets are slow: moderndid inverts the test on a 1,000-point
grid (the R default) and, for each ``Mbar`` and each of the 2 x (pre-periods - 1) polyhedra,
simulates a least-favourable critical value with 1,000 linear programmes (about 12 s per ``Mbar``
for the 5-pre / 2-post Medicaid example on this machine, 48 s for four values; smoothness about
1 s). The results are therefore cached on disk, one file per (coefficients, covariance, target,
restriction, M, method, alpha, grid, moderndid version): a rerun of ``make all`` with unchanged
estimates reads them back in milliseconds, and adding a value of ``M`` computes only that value.
The numbers are not approximated.

Examples
--------
>>> import moderndid, numpy as np
>>> from analysis.did.twfe import twfe
>>> ehec = moderndid.load_ehec().to_pandas()
>>> d = ehec[(ehec.year < 2016) & (ehec.yexp2.isna() | (ehec.yexp2 != 2015))]
>>> es = twfe(d, "dins", "stfips", "year", "yexp2", dynamic=True)
>>> sd = honest_did(es, restriction="smoothness", M=[0.0, 0.01], cache=False)
>>> sd.tidy()[["M", "conf_low", "conf_high"]].round(4).values.tolist()
[[nan, 0.0285, 0.0644], [0.0, 0.026, 0.0607], [0.01, 0.0132, 0.0787]]
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

from analysis.results import EstimationResult, tidy_frame

__all__ = ["honest_did", "event_study_inputs"]

_RESTRICTIONS = {"relative_magnitude": "DeltaRM", "smoothness": "DeltaSD"}


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
    return lv, "weighted post-treatment coefficients"


def _cache_key(payload: dict[str, Any], b: np.ndarray, V: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(payload, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(b, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(V, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def honest_did(
    es: EstimationResult,
    restriction: str = "relative_magnitude",
    M: float | Sequence[float] = (0.5, 1.0, 1.5, 2.0),
    target: int | str | Sequence[float] | None = None,
    alpha: float = 0.05,
    *,
    method: str | None = None,
    reference: int | None = None,
    monotonicity_direction: str | None = None,
    bias_direction: str | None = None,
    grid_points: int = 1000,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> EstimationResult:
    """Robust confidence sets under bounded violations of parallel trends.

    Parameters
    ----------
    es
        Event-study result with ``event_time`` rows and ``vcov``; the reference period (default
        ``es.meta['reference_period']``, else -1) must not be an estimated row.
    restriction
        ``"relative_magnitude"`` (``M`` is Mbar) or ``"smoothness"`` (``M`` bounds the change in
        slope).
    M
        One value or several.
    target
        ``None``: the first post-treatment coefficient (the R default); an event time; ``"average"``;
        or weights over the post-treatment coefficients (HonestDiD's ``l_vec``).
    alpha
        1 - confidence level.
    method
        HonestDiD's CI method: relative magnitudes "C-LF" (default) or "Conditional"; smoothness
        "FLCI" (default without shape restrictions), "Conditional", "C-F", "C-LF".
    reference
        Reference event time, if not ``es.meta['reference_period']``.
    monotonicity_direction, bias_direction
        Optional shape / sign restrictions ("increasing"/"decreasing", "positive"/"negative").
    grid_points
        Grid of the test inversion (conditional methods); 1000 as the R package.
    cache
        Read and write results on disk (see the module docstring).
    cache_dir
        Folder of the cache; defaults to ``analysis.config.INTERIM / "cache" / "honest_did"``.

    Returns
    -------
    EstimationResult
        Tidy rows: ``original`` (the conventional CI, ``M`` NaN) then one per ``M`` with the robust
        ``conf_low``, ``conf_high`` (``estimate`` and ``std_error`` only on the original row); extra
        columns ``M``, ``restriction``, ``method``, ``event_time`` (the target's, if one).
        ``meta`` has ``timings`` (seconds per M, 0 for cache hits), ``cache_hits``, ``num_pre``,
        ``num_post``, ``l_vec``.
    """
    try:
        from moderndid import __version__ as md_version
        from moderndid.didhonest import (
            construct_original_cs,
            create_sensitivity_results_rm,
            create_sensitivity_results_sm,
        )
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("honest_did needs moderndid with its didhonest extra: pip install 'moderndid[didhonest]'") from exc

    if restriction not in _RESTRICTIONS:
        raise ValueError(f"restriction must be one of {list(_RESTRICTIONS)}, got {restriction!r}")
    Ms = [float(m) for m in np.atleast_1d(np.asarray(M, dtype=float))]
    if any(m < 0 for m in Ms):
        raise ValueError("M must be non-negative")
    e, b, V, n_pre = event_study_inputs(es, reference)
    n_post = e.size - n_pre
    if restriction == "relative_magnitude" and n_pre < 2:
        raise ValueError("relative magnitudes need at least 2 pre-treatment coefficients (besides the reference)")
    post_e = e[n_pre:]
    l_vec, target_label = _target_vector(target, post_e)
    if method is None:
        method = "C-LF" if restriction == "relative_magnitude" else (
            "FLCI" if monotonicity_direction is None and bias_direction is None else "C-F")
    target_e = int(post_e[np.argmax(l_vec)]) if np.count_nonzero(l_vec) == 1 else None

    folder: Path | None = None
    if cache:
        if cache_dir is None:
            from analysis.config import INTERIM

            cache_dir = INTERIM / "cache" / "honest_did"
        folder = Path(cache_dir)

    notes: list[str] = []
    rows_lb, rows_ub, timings, hits = [], [], [], 0
    for m in Ms:
        payload = {
            "restriction": restriction, "M": m, "method": method, "alpha": alpha, "l_vec": l_vec.tolist(),
            "n_pre": n_pre, "n_post": n_post, "mono": monotonicity_direction, "bias": bias_direction,
            "grid": grid_points, "moderndid": md_version,
        }
        path = folder / f"{_cache_key(payload, b, V)}.json" if folder is not None else None
        if path is not None and path.is_file():
            got = json.loads(path.read_text())
            rows_lb.append(got["lb"])
            rows_ub.append(got["ub"])
            timings.append(0.0)
            hits += 1
            continue
        kwargs: dict[str, Any] = dict(
            betahat=b, sigma=V, num_pre_periods=n_pre, num_post_periods=n_post, l_vec=l_vec,
            alpha=alpha, method=method, monotonicity_direction=monotonicity_direction,
            bias_direction=bias_direction, grid_points=grid_points,
        )
        t0 = _time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if restriction == "relative_magnitude":
                out = create_sensitivity_results_rm(m_bar_vec=[m], **kwargs)
            else:
                out = create_sensitivity_results_sm(m_vec=[m], **kwargs)
        timings.append(_time.perf_counter() - t0)
        for w in caught:
            msg = str(w.message)
            if "open at one of the endpoints" in msg or "FLCI does not use" in msg:
                notes.append(f"M={m}: {msg}")
        lb, ub = float(out["lb"][0]), float(out["ub"][0])
        rows_lb.append(lb)
        rows_ub.append(ub)
        if path is not None:
            from analysis.io import write_text

            write_text(json.dumps({"lb": lb, "ub": ub, "payload": payload}), path)
    orig = construct_original_cs(betahat=b, sigma=V, num_pre_periods=n_pre, num_post_periods=n_post,
                                 l_vec=l_vec, alpha=alpha)
    theta = float(l_vec @ b[n_pre:])
    se = float(np.sqrt(l_vec @ V[n_pre:, n_pre:] @ l_vec))
    outcome = str(es.table["outcome"].iloc[0])
    estimator = f"honest_did({es.table['estimator'].iloc[0]})"
    k = len(Ms)
    table = tidy_frame(
        [theta, *([np.nan] * k)], [se, *([np.nan] * k)],
        term=["original", *[f"{'Mbar' if restriction == 'relative_magnitude' else 'M'}={m:g}" for m in Ms]],
        outcome=outcome, estimator=estimator, n_obs=int(es.table["n_obs"].max()), alpha=alpha,
        event_time=target_e,
        M=[np.nan, *Ms], restriction=restriction, method=["Original", *([method] * k)],
    )
    table.loc[0, ["conf_low", "conf_high"]] = [float(orig.lb), float(orig.ub)]
    table.loc[1:, "conf_low"] = rows_lb
    table.loc[1:, "conf_high"] = rows_ub
    table.loc[1:, "p_value"] = np.nan
    for w in notes:
        warnings.warn(w, UserWarning, stacklevel=2)
    return EstimationResult(
        table=table,
        vcov=None,
        meta={
            "restriction": restriction, "delta": _RESTRICTIONS[restriction], "method": method,
            "target": target_label, "l_vec": l_vec.tolist(), "num_pre": n_pre, "num_post": n_post,
            "event_times": e.tolist(), "timings": dict(zip(Ms, timings)), "cache_hits": hits,
            "cache_dir": str(folder) if folder is not None else None, "notes": notes,
        },
        title=f"HonestDiD ({restriction}, {method}) for {target_label}: {outcome}",
    )
