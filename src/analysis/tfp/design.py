"""Design matrices whose dummy columns are kept as integer codes, never as dense 0/1 columns.

Industry and year dummies in a 4-million-row moment problem would be 40-odd dense columns
(1.3 GB each time they are built, and a firm-clustered covariance of the moment contributions
would multiply that again). :class:`Design` keeps a design as a list of blocks: dense arrays
(polynomial terms, inputs) and :class:`Dummies` (codes 0..G-1, the first level dropped). The
products a GMM estimator needs are then computed block by block, dummies through
:func:`numpy.bincount` and sparse matrices:

- :meth:`Design.dot` (``Z @ c``), :meth:`Design.tdot` (``Z' v``), :meth:`Design.cross` (``Z' A``);
- :func:`cluster_meat`: ``H'H`` where row ``i`` of ``H`` is firm ``i``'s sum of the moment
  contributions ``z_it * r_it`` (the "meat" of a firm-clustered sandwich), with the dummy blocks
  of ``H`` sparse.

The column order is the order of the blocks, so results match the dense matrix exactly (up to
floating-point summation order).

Examples
--------
>>> import numpy as np
>>> x = np.array([[1.0], [2.0], [3.0], [4.0]]); g = np.array([0, 1, 1, 2])
>>> Z = Design([np.ones((4, 1)), Dummies(g, 3), x])
>>> Z.width, Z.dense().tolist()[1]
(4, [1.0, 1.0, 0.0, 2.0])
>>> np.allclose(Z.tdot(x[:, 0]), Z.dense().T @ x[:, 0])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

__all__ = ["Dummies", "Design", "cluster_meat"]


@dataclass(frozen=True)
class Dummies:
    """Dummy columns of the levels ``1..n_levels-1`` of ``codes`` (level 0 is the omitted one)."""

    codes: np.ndarray
    n_levels: int

    @property
    def width(self) -> int:
        """Number of columns (levels minus the omitted one)."""
        return self.n_levels - 1

    def dense(self) -> np.ndarray:
        """The 0/1 columns (for tests and small problems)."""
        return np.eye(self.n_levels)[self.codes][:, 1:]


def _width(block) -> int:
    return block.width if isinstance(block, Dummies) else block.shape[1]


def _tdot_dummies(d: Dummies, v: np.ndarray) -> np.ndarray:
    if v.ndim == 1:
        return np.bincount(d.codes, weights=v, minlength=d.n_levels)[1:]
    return np.column_stack([np.bincount(d.codes, weights=v[:, j], minlength=d.n_levels)[1:] for j in range(v.shape[1])])


@dataclass
class Design:
    """A design matrix as blocks of columns: dense ``(n, k)`` arrays and :class:`Dummies`."""

    blocks: list

    def __post_init__(self) -> None:
        self.blocks = [b if isinstance(b, Dummies) else np.asarray(b, dtype=float).reshape(len(b), -1) for b in self.blocks]

    @property
    def width(self) -> int:
        """Number of columns."""
        return sum(_width(b) for b in self.blocks)

    def _offsets(self) -> list[slice]:
        out, o = [], 0
        for b in self.blocks:
            out.append(slice(o, o + _width(b)))
            o += _width(b)
        return out

    def dense(self) -> np.ndarray:
        """The full matrix (for tests and small problems)."""
        return np.column_stack([b.dense() if isinstance(b, Dummies) else b for b in self.blocks])

    def dot(self, coef: np.ndarray) -> np.ndarray:
        """``Z @ coef``."""
        out = None
        for b, s in zip(self.blocks, self._offsets()):
            c = coef[s]
            part = np.r_[0.0, c][b.codes] if isinstance(b, Dummies) else b @ c
            out = part if out is None else out + part
        return out

    def tdot(self, v: np.ndarray) -> np.ndarray:
        """``Z' v`` for a vector or a dense ``(n, k)`` matrix ``v``."""
        v = np.asarray(v, dtype=float)
        parts = [_tdot_dummies(b, v) if isinstance(b, Dummies) else b.T @ v for b in self.blocks]
        return np.concatenate(parts) if v.ndim == 1 else np.vstack(parts)

    def cross(self, other: Design) -> np.ndarray:
        """``Z' A`` for another design ``A`` with the same rows."""
        out = np.empty((self.width, other.width))
        for a, sa in zip(self.blocks, self._offsets()):
            for b, sb in zip(other.blocks, other._offsets()):
                if isinstance(a, Dummies) and isinstance(b, Dummies):
                    joint = np.bincount(a.codes.astype(np.int64) * b.n_levels + b.codes, minlength=a.n_levels * b.n_levels)
                    out[sa, sb] = joint.reshape(a.n_levels, b.n_levels)[1:, 1:]
                elif isinstance(a, Dummies):
                    out[sa, sb] = _tdot_dummies(a, b)
                elif isinstance(b, Dummies):
                    out[sa, sb] = _tdot_dummies(b, a).T
                else:
                    out[sa, sb] = a.T @ b
        return out


def cluster_meat(parts: Sequence[tuple[Design, np.ndarray]], cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """``H'H``, with ``H`` the cluster sums of the moment contributions of every ``(Z, r)`` part.

    Parameters
    ----------
    parts : sequence of (Design, numpy.ndarray)
        Instrument designs and their residuals; the moments are ``Z' r`` of each, stacked.
    cluster : numpy.ndarray
        Cluster (firm) code 0..C-1 of every row.
    n_clusters : int
        Number of clusters ``C``.

    Returns
    -------
    numpy.ndarray
        The ``(k, k)`` matrix ``sum_c h_c h_c'`` where ``h_c = sum_{rows of c} z_row * r_row``
        (not divided by the number of rows).

    Examples
    --------
    >>> import numpy as np
    >>> Z = Design([np.ones((4, 1)), Dummies(np.array([0, 1, 0, 1]), 2)])
    >>> r = np.array([1.0, 2.0, 3.0, 4.0]); c = np.array([0, 0, 1, 1])
    >>> H = np.add.reduceat(Z.dense() * r[:, None], [0, 2])
    >>> np.allclose(cluster_meat([(Z, r)], c, 2), H.T @ H)
    True
    """
    cluster = np.asarray(cluster, dtype=np.int64)
    dense_cols, sparse_blocks, where = [], [], []  # where: (kind, index into its list, width)
    for Z, r in parts:
        r = np.asarray(r, dtype=float)
        for b in Z.blocks:
            if isinstance(b, Dummies):
                m = sparse.csr_matrix((r, (cluster, b.codes)), shape=(n_clusters, b.n_levels))[:, 1:]
                where.append(("s", len(sparse_blocks), b.width))
                sparse_blocks.append(m.tocsc())
            else:
                for j in range(b.shape[1]):
                    where.append(("d", len(dense_cols), 1))
                    dense_cols.append(np.bincount(cluster, weights=b[:, j] * r, minlength=n_clusters))
    Hd = np.column_stack(dense_cols) if dense_cols else np.empty((n_clusters, 0))
    Hs = sparse.hstack(sparse_blocks, format="csc") if sparse_blocks else None
    # positions of the dense and sparse columns in the stacked order
    pos_d, pos_s, o = [], [], 0
    for kind, _, w in where:
        (pos_d if kind == "d" else pos_s).extend(range(o, o + w))
        o += w
    pos_d, pos_s = np.array(pos_d, dtype=int), np.array(pos_s, dtype=int)
    S = np.empty((o, o))
    S[np.ix_(pos_d, pos_d)] = Hd.T @ Hd
    if Hs is not None:
        SD = np.asarray(Hs.T @ Hd)
        S[np.ix_(pos_s, pos_d)] = SD
        S[np.ix_(pos_d, pos_s)] = SD.T
        S[np.ix_(pos_s, pos_s)] = (Hs.T @ Hs).toarray()
    return S
