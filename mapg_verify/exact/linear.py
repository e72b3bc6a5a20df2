"""``N = M^-1`` for ``M = I - gamma P_u`` applied to rows through one LU factorization (the numeric backend).

One factorization per point (LAPACK's ``getrf``) serves the values, the occupancies and every
adjoint solve of the Hessian-vector products (``M`` is strictly diagonally dominant, its condition
number at most ``(1 + gamma) / (1 - gamma)``). Its factors are applied by BLAS ``trsm``, not LAPACK's
``getrs``: scipy's OpenBLAS starts every core for ``getrs`` at any size, which with BLAS threads
unpinned on a loaded machine took milliseconds (``benchmarks/bench_numeric.py``, last table).
Solves compiled with numba on the same factors were slower at 64 states and three times slower at 256.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg.blas
import scipy.linalg.lapack


@dataclass(frozen=True)
class Solver:
    """``N = M^-1`` applied to rows, ``right(b) = (N b^T)^T`` and ``left(c) = c N``, by one LU
    factorization ``Pi M^T = L U`` (``getrf`` reads the C-ordered ``M`` as ``M^T`` in place):
    ``c N = (U^-1 L^-1 Pi c^T)^T``, ``N b^T = Pi^T L^-T U^-T b^T``, two ``trsm`` each."""

    lu: np.ndarray
    order: np.ndarray | None  # Pi as a gather, (Pi c)[i] = c[order[i]]; None for no interchange
    inverse: np.ndarray | None  # its inverse permutation

    @staticmethod
    def of(matrix: np.ndarray, overwrite: bool = False) -> Solver:  # in matrix's place if overwrite
        lu, pivots, _ = scipy.linalg.lapack.dgetrf(matrix.T, overwrite_a=overwrite)
        order = np.arange(len(matrix))
        if (pivots == order).all():  # the rule for M = I - gamma P_u: rows strictly diagonally dominant
            return Solver(lu, None, None)
        for i in np.flatnonzero(pivots != order):  # LAPACK's row interchanges, in turn
            order[i], order[pivots[i]] = order[pivots[i]], order[i]
        return Solver(lu, order, np.argsort(order))

    def right(self, b: np.ndarray) -> np.ndarray:
        flat = b.reshape(-1, b.shape[-1]).T  # (S, rows), Fortran order
        z = scipy.linalg.blas.dtrsm(1.0, self.lu, flat, lower=0, trans_a=1)
        z = scipy.linalg.blas.dtrsm(1.0, self.lu, z, lower=1, trans_a=1, diag=1, overwrite_b=1).T
        return (z if self.inverse is None else z[:, self.inverse]).reshape(b.shape)

    def left(self, c: np.ndarray) -> np.ndarray:
        flat = c.reshape(-1, c.shape[-1])
        flat = (flat if self.order is None else flat[:, self.order]).T
        z = scipy.linalg.blas.dtrsm(1.0, self.lu, flat, lower=1, diag=1)
        z = scipy.linalg.blas.dtrsm(1.0, self.lu, z, lower=0, overwrite_b=1)
        return z.T.reshape(c.shape)
