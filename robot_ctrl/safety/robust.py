"""Robust CBF filter: every barrier row holds for all model errors within a learned bound (SOCP).

After "Safe Learning-Based Control of Elastic Joint Robots via Control Barrier Functions"
(the CBF condition is tightened by β·σ(x) of a Gaussian-process model of the dynamics error).

    gp = GPResidual().fit(X, Y)                   # X: states [q, q̇]; Y: measured − model q̈
    f = RobustSafetyFilter(robot, constraints, residual=gp, beta=2.0, kappa=0.05, mode="effort")
    out = f.step(q, v, u_nom)                     # a FilterOutcome, as SafetyFilter.step

Uncertainty model. Write z for the natural variable of the rows (q̈ in effort mode, q̇ in velocity
mode) and z_m(u) for what the model predicts for the command u (effort: M⁻¹(τ − h); velocity:
z_m = u). The true value is

    z = z_m(u) + μ(x) + δ + P E (u − u_ref),      |δ_j| ≤ β σ_j(x),   ‖E‖₂ ≤ κ,

- μ(x), σ(x): mean and standard deviation of a residual model of z − z_m over the state
  x = [q, q̇] (`GPResidual`, or any callable x ↦ (μ, σ)); μ corrects the model, β σ bounds what
  is left (β = 2 covers ~95% of a well-calibrated GP's marginals, β = 3 ~99.7%);
- E: an unknown input-gain error (motor constants, gear and joint elasticity), relative to the
  command and bounded in spectral norm by κ; P = M⁻¹ (effort: τ acts through M⁻¹) or I
  (velocity). u_ref is the command around which the residual model was learned, where the
  gain error is already in μ + δ: effort mode u_ref = h(q, q̇) ("bias", the torque that gives
  zero model acceleration, default), g(q) ("gravity") or 0 ("zero"); velocity mode u_ref = 0.

Robust rows. A nominal row a·z ≤ c (a row of a constraint in its natural variable) holds for
every such error iff

    a·z_m(u) + a·μ + β Σ_j |a_j| σ_j + κ ‖a P‖₂ ‖u − u_ref‖₂ ≤ c,

since max over |δ_j| ≤ βσ_j of a·δ is β Σ|a_j|σ_j and max over ‖E‖₂ ≤ κ of a P E w is
κ ‖aP‖₂ ‖w‖₂ (attained by a rank-one E). A per-joint gain error (diagonal E, |E_jj| ≤ κ) is
covered too, by Cauchy-Schwarz, but conservatively: the bound lets the torque of every joint
leak into every row (a finger's row is tightened by the arm's torques), up to √n times the
per-joint worst case. In the filter's rows A u ≤ b in the command u (effort: A = a M⁻¹ = aP,
b = c + a M⁻¹ h, see filter.py), this is the second-order cone constraint

    A_i u + κ ‖A_i‖₂ ‖u − u_ref‖₂ ≤ b_i − a_i·μ − β |a_i|·σ,      a_i = A_i M(q)  (effort),

with the natural row a_i recovered from the mapped one (a_i = A_i in velocity mode). Every row
in the natural variable is tightened (barrier rows and the q̈ / q̇ boxes alike: they are all
statements about the true z); boxes on τ itself (effort limits, the trailing rows) are exact
and stay as they are. The filter solves

    min ½‖u − u_nom‖²_W   s.t. the robust rows                                         (SOCP)

through cvxpy with Clarabel (built once with parameters, DPP: a step only sets values). If it is
infeasible, a relaxed SOCP with a slack on every natural row (heavy penalty w·(Σs + Σs²), boxes
on τ hard) is tried, then the base filter's brake. With β = κ = 0 and μ = 0 it is the nominal
CBF-QP. Clarabel runs at tolerances near machine precision, where it often ends "optimal_inaccurate"
with the best solution it can reach; every solution is checked against the robust rows
themselves (relative `tol`) before it is used.

The residual model's data: z − z_m at states x, ideally with commands near u_ref (there the
gain error is part of the learned residual; elsewhere the κ term bounds it). Velocity mode: z is
the measured joint velocity, so the residual is the velocity loop's tracking error.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.safety.constraints import Constraint
from robot_ctrl.safety.filter import FilterOutcome, SafetyFilter

GAIN_REFS = ("bias", "gravity", "zero")


# --------------------------------------------------------------------------------------------
# Gaussian-process residual model
# --------------------------------------------------------------------------------------------
class GPResidual:
    """Exact GP regression of a vector residual y(x) ∈ Rⁿ over states x ∈ Rᵈ.

    Outputs are independent GPs sharing one RBF correlation over the features, with a
    length-scale per feature, and each with its own signal and noise variance:

        k_j(x, x') = σ_f,j² exp(−½ Σ_k (x_k − x'_k)² / ℓ_k²),   noise variance σ_n,j².

    With outputs standardised (`normalize_y=True`: ỹ_j = (y_j − m_j)/s_j, σ_f and σ_n in those
    units) one eigendecomposition R = U Λ Uᵀ of the shared correlation matrix serves every
    output: K_j + σ_n,j² I = U (σ_f,j² Λ + σ_n,j² I) Uᵀ, so the marginal likelihood, its gradient
    and each prediction cost the same for n outputs as for one.

    `fit(X, Y)` fits ℓ, σ_f and σ_n by maximising the marginal likelihood (L-BFGS-B within
    bounds, analytic gradient, `max_iter` iterations, from the values given; ℓ defaults to the
    spread of each feature) unless `optimize=False`, when the values given are used. `predict(x)` (also `gp(x)`) gives the posterior mean and standard deviation
    in the units of Y: for one state ((n,), (n,)), for X (k, d) ((k, n), (k, n)).

    The std is that of a new observation, √(σ_latent² + σ_n²)·s, with `include_noise=True` (the
    default): the likelihood fit puts into σ_n whatever the kernel cannot represent, so the latent
    std alone is overconfident about the true residual (on the Panda payload data, ~86% of held-out
    residuals within 2σ_latent, ~96% within 2σ). Near the data the std is ~σ_n·s; far from it the
    mean goes to m and the std to `prior_std` = √(σ_f² + σ_n²)·s.
    """

    def __init__(self, length_scale=None, signal_std=1.0, noise_std=0.1, optimize: bool = True,
                 normalize_y: bool = True, max_iter: int = 60, include_noise: bool = True):
        self.length_scale = None if length_scale is None else self._positive(length_scale, "length_scale")
        self.signal_std = self._positive(signal_std, "signal_std")
        self.noise_std = self._positive(noise_std, "noise_std")
        self.optimize, self.normalize_y, self.max_iter = bool(optimize), bool(normalize_y), int(max_iter)
        self.include_noise = bool(include_noise)
        self.X = None

    @staticmethod
    def _positive(x, name):
        x = np.asarray(x, dtype=float)
        if x.ndim > 1 or x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ValueError(f"{name} must be a positive finite number or a vector of them")
        return x

    @staticmethod
    def _sized(x, k, name):
        if x.shape not in ((), (k,)):
            raise ValueError(f"{name} must be a number or {k} numbers, got shape {x.shape}")
        return np.broadcast_to(x, (k,)).astype(float)

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X, Y) -> "GPResidual":
        """Fit to states X (N, d) and residuals Y (N, n) (or (N,)). Returns self."""
        X = np.asarray(X, dtype=float)
        Y = np.asarray(Y, dtype=float)
        if Y.ndim == 1:
            Y = Y[:, None]
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] < 2:
            raise ValueError(f"fit needs X (N, d) and Y (N, n) with the same N >= 2, got {X.shape}, {Y.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
            raise ValueError("fit: X and Y must be finite (no NaN or inf)")
        d, p = X.shape[1], Y.shape[1]
        spread = X.std(axis=0)
        spread[spread < 1e-9] = 1.0
        ell = spread if self.length_scale is None else self._sized(self.length_scale, d, "length_scale")
        sf = self._sized(self.signal_std, p, "signal_std")
        sn = self._sized(self.noise_std, p, "noise_std")
        if self.normalize_y:
            self.y_mean, self.y_scale = Y.mean(axis=0), Y.std(axis=0)
            self.y_scale[self.y_scale < 1e-12] = 1.0
        else:
            self.y_mean, self.y_scale = np.zeros(p), np.ones(p)
        Yn = (Y - self.y_mean) / self.y_scale
        theta = np.concatenate([np.log(ell), np.log(sf), np.log(sn)])
        if self.optimize:
            theta = self._optimize(X, Yn, theta, spread)
        self.X, self.d, self.n = X, d, p
        self.length_scale = np.exp(theta[:d])
        self.signal_std, self.noise_std = np.exp(theta[d:d + p]), np.exp(theta[d + p:])
        self._Xs = X / self.length_scale
        self._sq = np.einsum("ij,ij->i", self._Xs, self._Xs)
        lam, U = self._eig(self._corr(self._Xs, self._sq))
        self._U = U
        self._dinv = 1.0 / (self.signal_std ** 2 * lam[:, None] + self.noise_std ** 2)  # (N, p)
        # K_j α_j = y_j with K_j = σ_f,j² R + σ_n,j² I; the mean is k_j·α_j = σ_f,j² r·α_j
        self._alpha = U @ (self._dinv * (U.T @ Yn))
        self._w_mean = self.signal_std ** 2 * self._alpha  # so that mean = r @ _w_mean
        return self

    @staticmethod
    def _corr(Xs, sq):
        return np.exp(-0.5 * np.maximum(sq[:, None] + sq[None, :] - 2.0 * Xs @ Xs.T, 0.0))

    @staticmethod
    def _eig(R):
        from scipy import linalg  # (the fit only: a safety filter process does not load it)

        lam, U = linalg.eigh(R, check_finite=False)
        return np.maximum(lam, 0.0), U

    def _nll(self, theta, X, Yn):
        """Negative log marginal likelihood of all outputs and its gradient in θ = log(ℓ, σ_f, σ_n)."""
        N, p = Yn.shape
        d = X.shape[1]
        Xs = X / np.exp(theta[:d])
        R = self._corr(Xs, np.einsum("ij,ij->i", Xs, Xs))
        try:
            lam, U = self._eig(R)
        except np.linalg.LinAlgError:  # (scipy.linalg's is this one)
            return 1e25, np.zeros_like(theta)
        sf2, sn2 = np.exp(2.0 * theta[d:d + p]), np.exp(2.0 * theta[d + p:])
        D = sf2 * lam[:, None] + sn2  # (N, p): eigenvalues of every output's K_j + σ_n,j² I
        C = U.T @ Yn  # (N, p)
        nll = 0.5 * float(np.sum(C * C / D) + np.sum(np.log(D))) + 0.5 * N * p * np.log(2.0 * np.pi)
        # ∂/∂ of ½ Σ c²/D + ½ Σ log D through D: ½ (1/D − c²/D²)
        G = 0.5 * (1.0 / D - C * C / (D * D))
        grad = np.empty_like(theta)
        grad[d:d + p] = np.sum(G * 2.0 * sf2 * lam[:, None], axis=0)
        grad[d + p:] = np.sum(G * 2.0 * sn2, axis=0)
        # length-scales: ∂NLL/∂log ℓ_k = ½ tr(W (R ⊙ Δ_k)) with W = Σ_j σ_f,j² (K_j⁻¹ − α_j α_jᵀ)
        Alpha = U @ (C / D)
        W = (U * np.sum(sf2 / D, axis=1)) @ U.T - (Alpha * sf2) @ Alpha.T
        # ∂R/∂log ℓ_k = R ⊙ (x_k − x'_k)²/ℓ_k²; with WR = W ⊙ R symmetric and c = x_k/ℓ_k,
        # ½ Σ_ij WR_ij (c_i − c_j)² = Σ_i c_i² (WR 1)_i − cᵀ WR c
        WR = W * R
        grad[:d] = (Xs * Xs).T @ WR.sum(axis=1) - np.einsum("ik,ik->k", Xs, WR @ Xs)
        return nll, grad

    def _optimize(self, X, Yn, theta0, spread):
        d, p = X.shape[1], Yn.shape[1]
        bounds = [(np.log(1e-2 * s), np.log(1e3 * s)) for s in spread] + \
                 [(np.log(1e-2), np.log(1e2))] * p + [(np.log(1e-4), np.log(1e1))] * p
        lo, hi = np.array(bounds).T
        from scipy import optimize

        res = optimize.minimize(self._nll, np.clip(theta0, lo, hi), args=(X, Yn), jac=True,
                                method="L-BFGS-B", bounds=bounds, options={"maxiter": self.max_iter})
        return res.x if np.all(np.isfinite(res.x)) else np.clip(theta0, lo, hi)

    # -- predict -----------------------------------------------------------------------------
    @property
    def prior_std(self) -> np.ndarray:
        """The std `predict` gives far from every training point, per output."""
        self._check_fitted()
        return np.sqrt(self.signal_std ** 2 + self._noise_var) * self.y_scale

    @property
    def _noise_var(self):
        return self.noise_std ** 2 if self.include_noise else 0.0

    def _check_fitted(self):
        if self.X is None:
            raise RuntimeError("GPResidual: call fit(X, Y) first")

    def predict(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std at one state x (d,) → ((n,), (n,)), or at X (k, d) → ((k, n), (k, n))."""
        self._check_fitted()
        x = np.asarray(x, dtype=float)
        single = x.ndim == 1
        Xq = x[None, :] if single else x
        if Xq.ndim != 2 or Xq.shape[1] != self.d:
            raise ValueError(f"predict: x must have {self.d} features, got shape {x.shape}")
        if not np.all(np.isfinite(Xq)):
            raise ValueError("predict: x must be finite (no NaN or inf)")
        Zs = Xq / self.length_scale
        D2 = np.einsum("ij,ij->i", Zs, Zs)[:, None] + self._sq[None, :] - 2.0 * Zs @ self._Xs.T
        Rq = np.exp(-0.5 * np.maximum(D2, 0.0))  # (k, N) correlations with the training states
        mean = Rq @ self._w_mean
        P = Rq @ self._U  # (k, N)
        sf2 = self.signal_std ** 2
        var = np.maximum(sf2 - sf2 * sf2 * ((P * P) @ self._dinv), 0.0)  # σ_f² − k_jᵀ K_j⁻¹ k_j
        var += self._noise_var
        mean = mean * self.y_scale + self.y_mean
        std = np.sqrt(var) * self.y_scale
        return (mean[0], std[0]) if single else (mean, std)

    __call__ = predict


# --------------------------------------------------------------------------------------------
# robust filter
# --------------------------------------------------------------------------------------------
class RobustSafetyFilter(SafetyFilter):
    """SafetyFilter whose rows in the natural variable hold under bounded model error (SOCP).

    residual: a `GPResidual` or any callable x = [q, q̇] ↦ (μ (n,), σ (n,)) of the error of the
    natural variable (q̈ effort, q̇ velocity); None: μ = σ = 0. beta scales σ; kappa bounds the
    relative input-gain error ‖E‖₂; gain_ref: "bias" | "gravity" | "zero" (effort; velocity mode:
    "zero"), see the module doc. slack_weight: the penalty on the slack of the relaxed SOCP;
    tol: relative tolerance of the check of a solution against the robust rows. The other
    arguments are SafetyFilter's (the backend is the SOCP). A residual model that fails or
    returns non-finite / negative values makes the step brake.

    After a step: `A`, `b`, `h` hold the nominal rows in u (as SafetyFilter), `b_robust` the
    tightened right-hand sides, `g` the cone coefficients κ‖A_i‖₂ (0 on τ boxes), `u_ref`,
    `mu`, `sigma` the residual model's output. FilterOutcome.residual / binding / violated refer
    to the robust rows.
    """

    def __init__(self, robot: RobotModel, constraints: list[Constraint], residual=None,
                 beta: float = 2.0, kappa: float = 0.0, mode: str = "effort", dt: float = 0.002,
                 weights=None, a_brake=None, alpha_fn=None, gain_ref: str | None = None,
                 slack_weight: float = 1e4, solver: str = "CLARABEL", tol: float = 1e-7):
        super().__init__(robot, constraints, mode=mode, dt=dt, weights=weights, backend="daqp",
                         a_brake=a_brake, alpha_fn=alpha_fn, tol=tol)
        if not (np.isfinite(beta) and beta >= 0 and np.isfinite(kappa) and kappa >= 0):
            raise ValueError("beta and kappa must be finite and >= 0")
        if residual is not None and not callable(residual):
            raise ValueError("residual must be a GPResidual or a callable x -> (mean, std)")
        if isinstance(residual, GPResidual) and residual.X is not None and \
                (residual.d != 2 * self.n or residual.n != self.n):
            raise ValueError(f"the GP residual maps {residual.d} features to {residual.n} outputs; "
                             f"the filter needs [q, q̇] ({2 * self.n}) to {self.n}")
        gain_ref = ("bias" if mode == "effort" else "zero") if gain_ref is None else gain_ref
        if gain_ref not in GAIN_REFS or (mode == "velocity" and gain_ref != "zero"):
            raise ValueError(f"gain_ref must be one of {GAIN_REFS} (velocity mode: 'zero'), got '{gain_ref}'")
        if not (np.isfinite(slack_weight) and slack_weight > 0):
            raise ValueError("slack_weight must be finite and > 0")
        self.residual, self.beta, self.kappa, self.gain_ref = residual, float(beta), float(kappa), gain_ref
        self.slack_weight = float(slack_weight)
        self.weights = np.ones(self.n) if weights is None else np.asarray(weights, dtype=float)
        self.solver = solver
        k, m, n = self._n_nat, self.m, self.n
        self.b_robust = np.zeros(m)
        self.g = np.zeros(m)
        self.u_ref = np.zeros(n)
        self.mu, self.sigma = np.zeros(n), np.zeros(n)
        self._x = np.zeros(2 * n)
        self._tight = False  # robust rows computed for the current step
        self._build(k, m, n)

    @classmethod
    def from_filter(cls, base: SafetyFilter, residual=None, beta: float = 2.0, kappa: float = 0.0,
                    **kw) -> "RobustSafetyFilter":
        """A robust filter with the constraints, mode, dt, weights, braking and α rule of `base`
        (e.g. from config.build_filter). The constraint objects are shared: step one filter at
        a time."""
        w = getattr(base, "weights", None)
        if w is None and hasattr(base.backend, "w"):
            w = base.backend.w
        return cls(base.robot, list(base.constraints), residual=residual, beta=beta, kappa=kappa,
                   mode=base.mode, dt=base.dt, weights=w, a_brake=base.a_brake,
                   alpha_fn=base.alpha_fn, **kw)

    def _build(self, k, m, n):
        import cvxpy as cp

        self.cp = cp
        u, t = cp.Variable(n), cp.Variable()
        self._u_nom, self._uref = cp.Parameter(n), cp.Parameter(n)
        self._An, self._bn = cp.Parameter((k, n)), cp.Parameter(k)
        self._gn = cp.Parameter(k, nonneg=True)
        sw = np.sqrt(self.weights)
        obj = 0.5 * cp.sum_squares(cp.multiply(sw, u - self._u_nom))
        cone = cp.SOC(t, u - self._uref)  # t ≥ ‖u − u_ref‖₂ (tight at the optimum where it matters: g ≥ 0)
        hard = [cone]
        soft_cons = [cone]
        s = cp.Variable(k, nonneg=True)
        if k:
            hard.append(self._An @ u + cp.multiply(self._gn, t) <= self._bn)
            soft_cons.append(self._An @ u + cp.multiply(self._gn, t) - s <= self._bn)
        if m > k:
            self._At, self._bt = cp.Parameter((m - k, n)), cp.Parameter(m - k)
            hard.append(self._At @ u <= self._bt)
            soft_cons.append(self._At @ u <= self._bt)
        self._var_u = u
        self._hard = cp.Problem(cp.Minimize(obj), hard)
        self._soft = cp.Problem(cp.Minimize(obj + self.slack_weight * (cp.sum(s) + cp.sum_squares(s))), soft_cons)
        assert self._hard.is_dpp() and self._soft.is_dpp()
        # the first solve of a parametrised problem compiles it (~10-20 ms): do it here, not in
        # the control loop
        self.b_robust[:] = 1.0
        for soft in (False, True):
            self._solve(np.zeros(n), soft)
        self.b_robust[:] = 0.0

    # -- robust rows ---------------------------------------------------------------------------
    def tighten(self, q, v) -> bool:
        """Robust right-hand sides and cone coefficients from the current nominal rows (self.A,
        self.b of `rows(q, v)`). False if the residual model gives no usable bound."""
        k, n = self._n_nat, self.n
        A, b = self.A, self.b
        if self.residual is None:
            mu, sigma = np.zeros(n), np.zeros(n)
        else:
            self._x[:n], self._x[n:] = q, v
            try:
                mu, sigma = self.residual(self._x.copy())
                mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
            except Exception:  # noqa: BLE001 — a broken residual model must not break the filter
                return False
            if mu.shape != (n,) or sigma.shape != (n,) or not np.isfinite(mu.sum() + sigma.sum()) \
                    or np.any(sigma < 0):
                return False
        self.mu, self.sigma = mu, sigma
        if self.mode == "effort":
            M = self.robot.mass_matrix(q)
            a_nat = A[:k] @ M  # the rows as the constraints wrote them, in q̈ (A_τ = a M⁻¹)
            if self.gain_ref == "bias":
                self.u_ref = self.robot.nonlinear_effects(q, v)
            elif self.gain_ref == "gravity":
                self.u_ref = self.robot.gravity(q)
            else:
                self.u_ref = np.zeros(n)
        else:
            a_nat = A[:k]
            self.u_ref = np.zeros(n)
        self.b_robust[:] = b
        self.b_robust[:k] -= a_nat @ mu + self.beta * (np.abs(a_nat) @ sigma)
        self.g[:k] = self.kappa * np.sqrt(np.einsum("ij,ij->i", A[:k], A[:k]))
        return bool(np.isfinite(self.b_robust.sum() + self.g.sum() + self.u_ref.sum()))

    def robust_residual(self, u) -> np.ndarray:
        """A u + g ‖u − u_ref‖ − b_robust: ≤ 0 on every row iff u satisfies the robust rows."""
        return self.A @ u + self.g * np.linalg.norm(u - self.u_ref) - self.b_robust

    # -- step ----------------------------------------------------------------------------------
    def _solve(self, u_nom, soft: bool):
        k = self._n_nat
        self._u_nom.value, self._uref.value = u_nom, self.u_ref
        if k:
            self._An.value, self._bn.value, self._gn.value = self.A[:k], self.b_robust[:k], self.g[:k]
        if self.m > k:
            self._At.value, self._bt.value = self.A[k:], self.b_robust[k:]
        prob = self._soft if soft else self._hard
        opts = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10} \
            if self.solver == "CLARABEL" else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate": checked
                prob.solve(solver=self.solver, **opts)
        except (self.cp.error.SolverError, ValueError, ArithmeticError):
            return None
        u = self._var_u.value
        # "optimal_inaccurate": Clarabel met only its reduced tolerances; the caller checks the
        # rows themselves, so such a solution is used when it keeps them
        if prob.status not in ("optimal", "optimal_inaccurate") or u is None or not np.all(np.isfinite(u)):
            return None
        return np.asarray(u, dtype=float)

    def step(self, q, v, u_nom) -> FilterOutcome:
        t0 = time.perf_counter()
        self._tight = False
        q, v, u_nom, rejected = self._checked(q, v, u_nom, t0)
        if rejected is not None:
            return rejected
        A, b, _ = self.rows(q, v)
        if not (np.isfinite(A.sum() + b.sum()) and self.tighten(q, v)):
            return self._brake(q, v, "brake", t0, rows=bool(np.isfinite(A.sum() + b.sum())))
        self._tight = True
        scale = self.tol * max(1.0, float(np.abs(self.b_robust).max(initial=0.0)))
        tq = time.perf_counter()
        status, r = "ok", None
        u = self._solve(u_nom, soft=False)
        if u is not None:
            r = self.robust_residual(u)
            if r.max(initial=-np.inf) > scale:
                u = None
        if u is None:
            status = "relaxed"
            u = self._solve(u_nom, soft=True)
            # the boxes on τ are hard in the relaxed problem too
            if u is not None:
                r = self.robust_residual(u)
                if r[self._n_nat:].max(initial=-np.inf) > scale:
                    u = None
        self.qp_us = (time.perf_counter() - tq) * 1e6
        if u is None:
            return self._brake(q, v, "brake", t0, rows=True)
        if status == "relaxed":
            self.fallbacks += 1
        return self._outcome(u, u_nom, status, t0, r)

    def _outcome(self, u, u_nom, status, t0, r=None) -> FilterOutcome:
        if not self._tight:
            return super()._outcome(u, u_nom, status, t0, r)
        if r is None:
            r = self.robust_residual(u)
            r = np.where(np.isfinite(r), r, np.inf)
        self._last_u = np.array(u, dtype=float)
        h_min = float(np.min(self.h, initial=np.inf, where=np.isfinite(self.h)))
        self._last_h_min = h_min
        return FilterOutcome(u=self._last_u, status=status, intervention=float(np.linalg.norm(u - u_nom)),
                             h_min=h_min, solve_us=(time.perf_counter() - t0) * 1e6,
                             residual=float(r.max(initial=0.0)), qp_us=self.qp_us,
                             _r=r, _scale=self.b_robust.copy(), _names=self.row_names)
