"""R-compatible normal draws for the two simulated constants of HonestDiD.

The R package HonestDiD simulates two constants, each after ``set.seed(seed)`` (seed 0 by
default): the folded-normal quantile of the FLCI (``quantile(abs(rnorm(1e6) + mu), 1 - alpha)``)
and the least-favourable critical value of the C-LF hybrid (1,000 draws of
``mvtnorm::rmvnorm(sigma = ...)``). Reproducing R's published numbers to the digit therefore needs
R's random stream, which is fully specified by R's documentation (``?RNG``, ``?set.seed``):

* ``set.seed(s)``: the integer seed is scrambled by 50 steps of the linear congruential generator
  ``s <- 69069 * s + 1`` (mod 2^32); the next 625 steps fill the Mersenne-Twister state, whose
  first word (the position) is then set to 624, so the first draw regenerates the state;
* ``unif_rand()``: a standard MT19937 32-bit output times 2^-32 (kept inside (0, 1));
* ``rnorm`` with the default ``normal.kind = "Inversion"``: ``u = floor(2^27 * U1) + U2``,
  ``z = qnorm(u / 2^27)``, two uniforms per normal;
* ``mvtnorm::rmvnorm(n, sigma)`` (method ``"eigen"``): an ``n x p`` matrix of such normals filled
  row by row, times the symmetric square root ``V diag(sqrt(max(lambda, 0))) V'`` of ``sigma``.

numpy's :class:`~numpy.random.MT19937` is the same Mersenne Twister; only its state is set here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

__all__ = ["r_rmvnorm", "r_rnorm", "r_runif"]

_BIG = 134217728.0  # 2^27
_I2_32M1 = 2.328306437080797e-10  # 1 / (2^32 - 1)


def _mt_state(seed: int) -> np.random.MT19937:
    s = int(seed) & 0xFFFFFFFF
    for _ in range(50):
        s = (69069 * s + 1) & 0xFFFFFFFF
    words = np.empty(625, dtype=np.uint32)
    for j in range(625):
        s = (69069 * s + 1) & 0xFFFFFFFF
        words[j] = s
    bg = np.random.MT19937(0)
    bg.state = {"bit_generator": "MT19937", "state": {"key": words[1:], "pos": 624}}
    return bg


def r_runif(n: int, seed: int = 0) -> np.ndarray:
    """``set.seed(seed); runif(n)`` in R (Mersenne-Twister)."""
    raw = _mt_state(seed).random_raw(n).astype(np.float64) * 2.3283064365386963e-10
    raw[raw <= 0.0] = 0.5 * _I2_32M1
    raw[1.0 - raw <= 0.0] = 1.0 - 0.5 * _I2_32M1
    return raw


@lru_cache(maxsize=8)
def _rnorm_cached(n: int, seed: int) -> np.ndarray:
    u = r_runif(2 * n, seed)
    v = (np.floor(_BIG * u[0::2]) + u[1::2]) / _BIG
    z = special.ndtri(v)
    z.setflags(write=False)
    return z


def r_rnorm(n: int, seed: int = 0) -> np.ndarray:
    """``set.seed(seed); rnorm(n)`` in R (Mersenne-Twister, Inversion). Read-only, cached.

    Examples
    --------
    >>> z = r_rnorm(1000, seed=0)
    >>> bool(z is r_rnorm(1000, seed=0)), z.shape
    (True, (1000,))
    """
    return _rnorm_cached(int(n), int(seed))


def r_rmvnorm(n: int, sigma: np.ndarray, seed: int = 0) -> np.ndarray:
    """``set.seed(seed); mvtnorm::rmvnorm(n, sigma = sigma)`` (zero mean, eigen method)."""
    sigma = np.asarray(sigma, dtype=float)
    p = sigma.shape[0]
    lam, vec = np.linalg.eigh((sigma + sigma.T) / 2)
    root = (vec * np.sqrt(np.maximum(lam, 0.0))) @ vec.T
    z = np.asarray(r_rnorm(n * p, seed)).reshape(n, p)
    return z @ root
