"""QP backends for   min ½‖u − u_nom‖²_W   s.t.   A u ≤ b.

- DaqpBackend: dense dual active-set (daqp), the default: microseconds for ~10 variables.
- CvxpyBackend: the same problem through cvxpy (Clarabel), with parameters: the reference.
Both return (u, ok). W is a positive diagonal.
"""
from __future__ import annotations

import numpy as np

# daqp's primal feasibility tolerance (its default is 1e-6): the filter promises rows that hold
# to 1e-9, so inactive rows are checked that tightly too
PRIMAL_TOL = 1e-11


class DaqpBackend:
    name = "daqp"

    def __init__(self, n: int, weights: np.ndarray):
        import daqp

        self._solve = daqp.solve
        self.H = np.diag(np.asarray(weights, dtype=float))
        self.w = np.asarray(weights, dtype=float)
        self._f = np.zeros(n)
        self._blower = np.zeros(0)

    def solve(self, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray, soft: np.ndarray | None = None,
              slack_weight: np.ndarray | None = None):
        """Without `soft`: the QP. With `soft` (bool per row): the relaxed QP with one slack
        s_i ≥ 0 per soft row, A_i u − s_i ≤ b_i, and cost ½ Σ slack_weight_i s_i² added
        (default 1e6); the other rows stay hard."""
        np.multiply(self.w, u_nom, out=self._f)
        np.negative(self._f, out=self._f)
        if self._blower.shape != b.shape:  # no lower bounds; allocated once per row count
            self._blower = np.full(b.shape, -1e30)
        blower = self._blower
        if soft is None:
            x, _, flag, _ = self._solve(self.H, self._f, A, b, blower, primal_tol=PRIMAL_TOL)
            return x, flag == 1
        idx = np.flatnonzero(soft)
        n, k = A.shape[1], len(idx)
        rho = np.full(k, 1e6) if slack_weight is None else np.asarray(slack_weight, float)[idx]
        H = np.zeros((n + k, n + k))
        H[:n, :n] = self.H
        H[n + np.arange(k), n + np.arange(k)] = rho
        f = np.concatenate([self._f, np.zeros(k)])
        Ae = np.zeros((A.shape[0], n + k))
        Ae[:, :n] = A
        Ae[idx, n + np.arange(k)] = -1.0
        x, _, flag, _ = self._solve(H, f, Ae, b, blower, primal_tol=PRIMAL_TOL)
        return x[:n].copy(), flag == 1


class CvxpyBackend:
    name = "cvxpy"

    def __init__(self, n: int, weights: np.ndarray, m: int, solver: str = "CLARABEL"):
        import cvxpy as cp

        self.cp = cp
        self.u = cp.Variable(n)
        self.u_nom = cp.Parameter(n)
        self.A = cp.Parameter((m, n))
        self.b = cp.Parameter(m)
        sw = np.sqrt(np.asarray(weights, dtype=float))
        self.problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(cp.multiply(sw, self.u - self.u_nom))),
                                  [self.A @ self.u <= self.b])
        self.solver = solver

    def solve(self, u_nom, A, b, soft=None, slack_weight=None):
        self.u_nom.value, self.A.value, self.b.value = u_nom, A, b
        try:
            opts = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10} \
                if self.solver == "CLARABEL" else {}
            self.problem.solve(solver=self.solver, **opts)
        except self.cp.error.SolverError:
            return np.zeros_like(u_nom), False
        ok = self.problem.status in ("optimal",) and self.u.value is not None
        return (np.asarray(self.u.value, dtype=float) if ok else np.zeros_like(u_nom)), ok
