"""The sets Delta of Rambachan and Roth (2023) as linear inequalities ``A delta <= d``.

``delta`` stacks the pre-treatment and post-treatment violations of parallel trends in event-time
order without the reference period, whose violation is 0 by normalisation: ``T = n_pre + n_post``
entries, the first ``n_pre`` before the reference period. Each builder writes the restriction on
the full path that includes the reference period (``T + 1`` entries, reference at position
``n_pre``) and drops that column at the end, as in Section 2.3 of the paper.

Restrictions (the paper's names; ``Mbar`` and ``M`` as in the paper):

* ``Delta^SD(M)``: ``|(delta_{t+1} - delta_t) - (delta_t - delta_{t-1})| <= M`` for every t;
* ``Delta^RM(Mbar) = U_{s, +/-} Delta^RM_{s,+/-}``: every post-treatment first difference is at most
  ``Mbar`` times the pre-treatment first difference ending in period s (taken with sign +/-),
  which is itself the largest pre-treatment first difference in absolute value;
* ``Delta^SDRM(Mbar)``: the same with second differences (deviations from a linear trend);
* sign restrictions ``delta_post >= 0`` ("positive") or ``<= 0`` ("negative") and monotonicity
  ``delta_t`` increasing / decreasing over all periods, added to any of them.

The RM and SDRM sets are unions of polyhedra (one per s and sign); :func:`polyhedra` returns them
all. Rows that involve only pre-treatment periods do not change the identified set; the tests use
the rows that touch a post-treatment period (``rows``), as the R package does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

__all__ = ["Polyhedron", "identified_set", "polyhedra", "sd_upper_bound_mpre"]

_ZERO_ROW = 1e-10


@dataclass(frozen=True)
class Polyhedron:
    """One polyhedron ``{delta : A delta <= d}`` and the rows the conditional test uses."""

    A: np.ndarray
    d: np.ndarray
    rows: np.ndarray  # indices of the rows used by the ARP test (moments touching post periods)
    label: str = ""


def _first_differences(n_pre: int, n_post: int) -> np.ndarray:
    T = n_pre + n_post
    D = np.zeros((T, T + 1))
    idx = np.arange(T)
    D[idx, idx], D[idx, idx + 1] = -1.0, 1.0
    return D


def _second_differences(n_pre: int, n_post: int) -> np.ndarray:
    T = n_pre + n_post
    D = np.zeros((T - 1, T + 1))
    idx = np.arange(T - 1)
    D[idx, idx], D[idx, idx + 1], D[idx, idx + 2] = 1.0, -2.0, 1.0
    return D


def _drop_reference(A: np.ndarray, n_pre: int) -> np.ndarray:
    return np.delete(A, n_pre, axis=1)


def _sign_rows(n_pre: int, n_post: int, bias: str) -> np.ndarray:
    """``-delta_post <= 0`` (positive bias) or ``delta_post <= 0`` (negative bias)."""
    if bias not in ("positive", "negative"):
        raise ValueError(f"bias_direction must be 'positive' or 'negative', got {bias!r}")
    T = n_pre + n_post
    A = np.zeros((n_post, T))
    A[np.arange(n_post), n_pre + np.arange(n_post)] = -1.0 if bias == "positive" else 1.0
    return A


def _monotone_rows(n_pre: int, n_post: int, direction: str) -> np.ndarray:
    """``delta_t - delta_{t+1} <= 0`` for consecutive periods through the reference (increasing)."""
    if direction not in ("increasing", "decreasing"):
        raise ValueError(f"monotonicity_direction must be 'increasing' or 'decreasing', got {direction!r}")
    D = _first_differences(n_pre, n_post)  # delta_{t+1} - delta_t over the full path
    A = _drop_reference(-D, n_pre)
    return A if direction == "increasing" else -A


def _post_rows(A: np.ndarray, n_pre: int) -> np.ndarray:
    return np.flatnonzero(np.any(A[:, n_pre:] != 0, axis=1))


def _relative_block(diff: np.ndarray, n_pre_rows: int, n_post: int, v: np.ndarray, Mbar: float) -> np.ndarray:
    """``|diff delta| <= ub' delta`` with the bound ``v`` (pre rows) and ``Mbar v`` (post rows)."""
    UB = np.vstack([np.tile(v, (n_pre_rows, 1)), np.tile(Mbar * v, (n_post, 1))])
    A = np.vstack([diff - UB, -diff - UB])
    return A[np.einsum("ij,ij->i", A, A) > _ZERO_ROW]


def _with_shape(A: np.ndarray, n_pre: int, n_post: int, bias: str | None, mono: str | None) -> np.ndarray:
    if bias is not None:
        A = np.vstack([A, _sign_rows(n_pre, n_post, bias)])
    if mono is not None:
        A = np.vstack([A, _monotone_rows(n_pre, n_post, mono)])
    return A


def polyhedra(
    delta: str,
    n_pre: int,
    n_post: int,
    M: float,
    *,
    bias: str | None = None,
    mono: str | None = None,
) -> list[Polyhedron]:
    """The polyhedra whose union is Delta.

    Parameters
    ----------
    delta
        ``"SD"`` (``M``), ``"RM"`` or ``"SDRM"`` (``M`` is Mbar).
    n_pre, n_post
        Numbers of pre- and post-treatment coefficients (reference period excluded).
    bias, mono
        Optional sign (``"positive"``/``"negative"``) or monotonicity
        (``"increasing"``/``"decreasing"``) restriction.

    Examples
    --------
    >>> [p.A.shape for p in polyhedra("SD", 2, 1, 0.1)]
    [(4, 3)]
    >>> len(polyhedra("RM", 3, 2, 1.0))  # s in {-2, -1, 0} times two signs
    6
    """
    T = n_pre + n_post
    if delta == "SD":
        D = _drop_reference(_second_differences(n_pre, n_post), n_pre)
        A = _with_shape(np.vstack([D, -D]), n_pre, n_post, bias, mono)
        d = np.concatenate([np.full(2 * D.shape[0], float(M)), np.zeros(A.shape[0] - 2 * D.shape[0])])
        return [Polyhedron(A, d, _post_rows(A, n_pre), "SD")]
    if delta == "RM":
        if n_pre < 1:
            raise ValueError("relative magnitudes need at least one pre-treatment coefficient")
        diff = _first_differences(n_pre, n_post)
        out = []
        for s in range(-(n_pre - 1), 1):
            for sign in (1.0, -1.0):
                v = np.zeros(T + 1)
                v[n_pre + s - 1], v[n_pre + s] = -sign, sign
                A = _drop_reference(_relative_block(diff, n_pre, n_post, v, M), n_pre)
                A = _with_shape(A, n_pre, n_post, bias, mono)
                out.append(Polyhedron(A, np.zeros(A.shape[0]), _post_rows(A, n_pre), f"RM s={s} {'+' if sign > 0 else '-'}"))
        return out
    if delta == "SDRM":
        if n_pre < 2:
            raise ValueError("Delta^SDRM needs at least two pre-treatment coefficients")
        diff = _second_differences(n_pre, n_post)
        out = []
        for s in range(-(n_pre - 2), 1):
            for sign in (1.0, -1.0):
                v = np.zeros(T + 1)
                v[n_pre + s - 2], v[n_pre + s - 1], v[n_pre + s] = sign, -2 * sign, sign
                A = _drop_reference(_relative_block(diff, n_pre - 1, n_post, v, M), n_pre)
                A = _with_shape(A, n_pre, n_post, bias, mono)
                out.append(Polyhedron(A, np.zeros(A.shape[0]), _post_rows(A, n_pre), f"SDRM s={s} {'+' if sign > 0 else '-'}"))
        return out
    raise ValueError(f"unknown Delta {delta!r}")


def identified_set(beta: np.ndarray, l_vec: np.ndarray, n_pre: int, polys: list[Polyhedron]) -> tuple[float, float]:
    """Bounds of ``theta = l' tau_post`` when ``beta`` is known: the union over the polyhedra of
    ``l' beta_post - l' delta_post`` with ``delta`` in the polyhedron and ``delta_pre = beta_pre``.

    A polyhedron whose linear programmes both fail contributes the point ``l' beta_post``.
    """
    beta = np.asarray(beta, dtype=float)
    T = beta.size
    theta = float(l_vec @ beta[n_pre:])
    c = np.concatenate([np.zeros(n_pre), l_vec])
    eq = np.hstack([np.eye(n_pre), np.zeros((n_pre, T - n_pre))])
    lows, highs = [], []
    for p in polys:
        kw = dict(A_ub=p.A, b_ub=p.d, A_eq=eq, b_eq=beta[:n_pre], bounds=(None, None), method="highs")
        lo, hi = linprog(c, **kw), linprog(-c, **kw)
        if lo.status != 0 and hi.status != 0:
            lows.append(theta)
            highs.append(theta)
            continue
        if hi.status == 0:
            lows.append(theta + hi.fun)  # theta - max l'delta
        else:
            lows.append(-np.inf)
        if lo.status == 0:
            highs.append(theta - lo.fun)
        else:
            highs.append(np.inf)
    return float(min(lows)), float(max(highs))


def sd_upper_bound_mpre(beta: np.ndarray, sigma: np.ndarray, n_pre: int, alpha: float = 0.05) -> float:
    """One-sided upper confidence bound on the largest pre-treatment second difference (the R
    package's ``DeltaSD_upperBound_Mpre``): ``max_t |Delta^2 beta_t| + z_{1-alpha} se_t`` over the
    second differences of ``(beta_pre, 0)``."""
    from scipy.stats import norm

    if n_pre < 2:
        raise ValueError("need at least two pre-treatment coefficients to bound M")
    D = _drop_reference(_second_differences(n_pre, 0), n_pre)
    A = np.vstack([D, -D])
    b = np.asarray(beta, dtype=float)[:n_pre]
    S = np.asarray(sigma, dtype=float)[:n_pre, :n_pre]
    se = np.sqrt(np.einsum("ij,jk,ik->i", A, S, A))
    return float(np.max(A @ b + norm.ppf(1 - alpha) * se))
