"""Robust CBF filter (issue 3, robust variant): the SOCP tightened by a learned model-error bound
β·σ(x) and an input-gain error κ, and the Gaussian-process residual model, on the real Panda
model (pinocchio) and cvxpy/Clarabel."""
from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from robot_ctrl.safety import (
    EffortLimits,
    JointPositionLimits,
    JointVelocityLimits,
    Kinematics,
    SafetyFilter,
    WorkspaceBox,
)
from robot_ctrl.safety.config import build_filter
from robot_ctrl.safety.constraints import StepData
from robot_ctrl.safety.robust import GPResidual, RobustSafetyFilter


def random_states(robot, rng, count, speed):
    span = robot.q_max - robot.q_min
    for _ in range(count):
        q = rng.uniform(robot.q_min + 0.05 * span, robot.q_max - 0.05 * span)
        v = rng.uniform(-speed, speed, robot.n) * robot.v_max
        yield q, v


def small_constraints():
    return [JointPositionLimits(margin=0.01), JointVelocityLimits(), EffortLimits(),
            WorkspaceBox(lower=[-0.8, -0.8, 0.05], upper=[0.9, 0.8, 1.2])]


def natural_rows(robot, f, q, v):
    """The rows of f's constraints in their natural variable, straight from the constraints."""
    kin = Kinematics(robot)
    kin.update(q, v if f.mode == "effort" else None)
    d = StepData(q=q, v=v, dt=f.dt, mode=f.mode, kin=kin)
    rows = [c for c in f.constraints if not c.in_torque]
    k = sum(c.size(robot, f.mode) for c in rows)
    A, b, h = np.zeros((k, robot.n)), np.zeros(k), np.zeros(k)
    i = 0
    for c in rows:
        s = c.size(robot, f.mode)
        c.fill(robot, d, A[i:i + s], b[i:i + s], h[i:i + s])
        i += s
    return A, b


def test_natural_rows_are_recovered_from_the_torque_rows(panda):
    """The robust rows use a_i = A_τ,i M(q) and c_i = b_τ,i − A_τ,i h(q, q̇): check that this
    inverts the filter's mapping onto τ, against rows written by the constraints themselves."""
    f = SafetyFilter(panda, small_constraints(), mode="effort")
    rng = np.random.default_rng(3)
    for q, v in random_states(panda, rng, 5, speed=0.3):
        A, b, _ = f.rows(q, v)
        k = f._n_nat
        M, h = panda.mass_matrix(q), panda.nonlinear_effects(q, v)
        a_ref, c_ref = natural_rows(panda, f, q, v)
        np.testing.assert_allclose(A[:k] @ M, a_ref, atol=1e-9 * max(1.0, np.abs(a_ref).max()))
        np.testing.assert_allclose(b[:k] - A[:k] @ h, c_ref, atol=1e-9 * max(1.0, np.abs(c_ref).max()))


@pytest.mark.parametrize("mode", ["effort", "velocity"])
def test_nominal_limit_equals_the_daqp_filter(panda, mode):
    """β = κ = 0 and no residual: the SOCP is the nominal CBF-QP (config/safety/panda.yaml).
    Some random states are already outside the safe set (a finger inside its margin, a link in
    collision) and both filters relax there, with different slack penalties: not compared."""
    base = build_filter(panda, "panda", mode=mode)
    rob = RobustSafetyFilter.from_filter(base, residual=None, beta=0.0, kappa=0.0)
    rng = np.random.default_rng(1)
    compared = intervened = 0
    for q, v in random_states(panda, rng, 60, speed=0.2):
        u_nom = (panda.gravity(q) + 20.0 * rng.normal(size=panda.n)) if mode == "effort" \
            else 1.5 * rng.normal(size=panda.n)
        base.reset()  # the same previous command (velocity mode: the acceleration rows' reference)
        rob.reset()
        a, b = base.step(q, v, u_nom), rob.step(q, v, u_nom)
        if a.status == "ok" and b.status == "ok":
            compared += 1
            np.testing.assert_allclose(b.u, a.u, atol=1e-6 * max(1.0, np.abs(a.u).max()))
            assert b.residual <= 1e-7 * max(1.0, np.abs(rob.b_robust).max())
            intervened += a.intervention > 1e-3
    assert compared >= 18
    assert intervened >= 12, "the random commands should often need filtering"


def _check_under_perturbations(panda, f, q, v, u, mu, sigma, beta, kappa, rng, samples=300):
    """max over sampled admissible model errors and over the natural rows of a·z_true − c
    (≤ 0: every row holds), z_true = z_m(u) + μ + δ + P E (u − u_ref)."""
    k, n = f._n_nat, panda.n
    A, b = f.A[:k], f.b[:k]
    if f.mode == "effort":
        M, h = panda.mass_matrix(q), panda.nonlinear_effects(q, v)
        a, c = A @ M, b - A @ h
        P = np.linalg.inv(M)
        z_m, w = P @ (u - h), u - h  # u_ref = h: the "bias" reference
    else:
        a, c, P = A, b, np.eye(n)
        z_m, w = u, u
    deltas, gains = [], []
    for _ in range(samples):  # random admissible errors: δ in the box (half at its corners), E random
        s = rng.uniform(-1, 1, n)
        deltas.append(beta * sigma * (np.sign(s) if rng.random() < 0.5 else s))
        E = rng.normal(size=(n, n)) if rng.random() < 0.5 else np.diag(rng.normal(size=n))
        gains.append(kappa * rng.uniform(0.5, 1.0) * E / np.linalg.norm(E, 2))
    for i in range(k):  # and each row's worst case: δ at the signed corner, E rank one along (aP, w)
        deltas.append(beta * sigma * np.sign(a[i]))
        g = a[i] @ P
        nw = np.linalg.norm(w)
        gains.append(kappa * np.outer(g, w) / (np.linalg.norm(g) * nw) if nw > 0 and g.any() else np.zeros((n, n)))
    worst = -np.inf
    for delta, E in zip(deltas, gains):
        z = z_m + mu + delta + P @ (E @ w)
        worst = max(worst, float(np.max((a @ z - c) / np.maximum(1.0, np.abs(c)))))
    return worst


@pytest.mark.parametrize("mode", ["effort", "velocity"])
def test_robust_command_keeps_every_row_under_sampled_model_errors(panda, mode):
    """Where the nominal filter intervenes, its command sits on a barrier and some admissible
    model error pushes it across; the robust command keeps every row for all of them."""
    beta, kappa = 2.0, 0.05
    # rad/s² or rad/s on the arm; a tenth on the fingers (m/s² or m/s), which brake at 1 m/s²
    scale = (0.3 if mode == "effort" else 0.02) * np.r_[np.ones(7), 0.1 * np.ones(panda.n - 7)]

    def residual(x):  # a state-dependent learned correction and error bound
        q, v = x[:panda.n], x[panda.n:]
        return 0.2 * scale * np.sin(q), scale * (1.0 + np.abs(v))

    cons = small_constraints()
    base = SafetyFilter(panda, cons, mode=mode)
    rob = RobustSafetyFilter(panda, cons, residual=residual, beta=beta, kappa=kappa, mode=mode)
    rng = np.random.default_rng(7)
    checked = nominal_broken = 0
    for q, v in random_states(panda, rng, 30, speed=0.15):
        u_nom = (panda.gravity(q) + 25.0 * rng.normal(size=panda.n)) if mode == "effort" \
            else 1.5 * rng.normal(size=panda.n)
        a = base.step(q, v, u_nom)
        if a.status != "ok" or a.intervention < 1e-3:
            continue
        b = rob.step(q, v, u_nom)
        if b.status != "ok":
            continue
        assert b.residual <= 1e-7 * max(1.0, np.abs(rob.b_robust).max())
        mu, sigma = residual(np.concatenate([q, v]))
        checked += 1
        worst_rob = _check_under_perturbations(panda, rob, q, v, b.u, mu, sigma, beta, kappa, rng)
        assert worst_rob <= 1e-7, (mode, worst_rob)
        worst_nom = _check_under_perturbations(panda, rob, q, v, a.u, mu, sigma, beta, kappa, rng)
        nominal_broken += worst_nom > 1e-4
        # the tightening costs some deviation from u_nom, never less than the nominal filter's
        assert b.intervention >= a.intervention - 1e-6
    assert checked >= 20, checked
    assert nominal_broken >= checked // 2, (nominal_broken, checked)


def test_infeasible_robust_rows_relax_then_brake(panda):
    """A bound too large to meet within the effort limits: relaxed, finite, reported."""
    cons = small_constraints()
    rob = RobustSafetyFilter(panda, cons, residual=lambda x: (np.zeros(panda.n), np.full(panda.n, 50.0)),
                             beta=3.0, kappa=0.0, mode="effort")
    q = panda.home.copy()
    q[3] = panda.q_max[3] - 0.02
    v = np.zeros(panda.n)
    v[3] = 1.5
    out = rob.step(q, v, panda.gravity(q))
    assert out.status in ("relaxed", "brake") and np.all(np.isfinite(out.u))
    assert "joint_position_upper[panda_joint4]" in out.violated and rob.fallbacks == 1
    # boxes on τ are hard in the relaxed problem
    assert np.all(np.abs(out.u) <= panda.tau_max * (1 + 1e-6))


# -- the Gaussian-process residual ---------------------------------------------------------------
def payload_model(robot, mass=1.5):
    """The Panda with `mass` kg added to the hand 10 cm beyond its flange (in the last arm
    joint's body, where pinocchio merged the hand)."""
    model = pin.Model(robot.model)
    jid = model.getJointId(robot.joint_names[6])
    hand = model.frames[model.getFrameId("panda_hand")].placement
    at = pin.SE3(np.eye(3), hand.translation + hand.rotation @ np.array([0.0, 0.0, 0.1]))
    model.inertias[jid] = model.inertias[jid] + at.act(pin.Inertia.FromSphere(mass, 0.03))
    return model, model.createData()


def payload_residuals(robot, model, data, rng, count, noise=0.0):
    """States x = [q, q̇] around home and the q̈ error of the nominal model at τ = h(q, q̇) (the
    model's zero-acceleration torque), measured with `noise` rad/s²."""
    X, Y = [], []
    arm = np.r_[np.ones(7), 0.05 * np.ones(robot.n - 7)]
    for _ in range(count):
        q = np.clip(robot.home + rng.uniform(-0.6, 0.6, robot.n) * arm, robot.q_min, robot.q_max)
        v = rng.uniform(-0.3, 0.3, robot.n) * robot.v_max
        tau = robot.nonlinear_effects(q, v)
        X.append(np.concatenate([q, v]))
        Y.append(pin.aba(model, data, q, v, tau))  # the model predicts q̈ = 0 here
    X, Y = np.array(X), np.array(Y)
    return X, Y + rng.normal(0.0, noise, Y.shape)


def test_gp_learns_the_payload_model_error(panda):
    model, data = payload_model(panda)
    rng = np.random.default_rng(0)
    X, Y = payload_residuals(panda, model, data, rng, 300, noise=0.05)
    Xt, Yt = payload_residuals(panda, model, data, rng, 200)
    gp = GPResidual().fit(X, Y)
    mean, std = gp.predict(Xt)
    assert mean.shape == std.shape == Yt.shape
    err = mean - Yt
    rel = np.sqrt(np.mean(err ** 2, axis=0)) / Yt.std(axis=0)
    # the arm's error (payload gravity and inertia) is learned: ~5-10% of its spread is left.
    # The fingers' also depends on q7 (their axis turns with the flange), which the arm's does
    # not: with one shared length-scale per feature the GP learns them only in part and says so
    # (a large σ, still calibrated below)
    assert np.all(rel[:7] < 0.2), rel
    assert np.all(rel < 0.7), rel
    assert np.mean(np.abs(err) <= 2.0 * std) >= 0.9
    # small near the data, the prior far from it
    m0, s0 = gp.predict(X[0])
    assert m0.shape == s0.shape == (panda.n,)
    assert np.all(s0[:7] < 0.1 * gp.prior_std[:7]) and np.all(s0 < 0.8 * gp.prior_std)
    far = X[0] + 20.0 * gp.length_scale
    m_far, s_far = gp(far)
    np.testing.assert_allclose(s_far, gp.prior_std, rtol=1e-6)
    np.testing.assert_allclose(m_far, gp.y_mean, atol=1e-6 * np.abs(gp.y_mean).max())
    # one state at a time agrees with the batch
    m1, s1 = gp.predict(Xt[5])
    np.testing.assert_allclose(m1, mean[5], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s1, std[5], rtol=1e-10, atol=1e-10)


def test_gp_with_fixed_hyperparameters_and_input_checks():
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, (60, 2))
    Y = np.c_[np.sin(X[:, 0]), np.cos(X[:, 1])]
    gp = GPResidual(length_scale=[1.0, 1.0], signal_std=1.0, noise_std=1e-3, optimize=False,
                    normalize_y=False).fit(X, Y)
    np.testing.assert_allclose(gp.length_scale, [1.0, 1.0])
    Xt = rng.uniform(-1.5, 1.5, (30, 2))
    m, s = gp.predict(Xt)
    assert np.abs(m - np.c_[np.sin(Xt[:, 0]), np.cos(Xt[:, 1])]).max() < 0.02
    assert np.all(s < 0.05)
    for bad_x, bad_y in [(X[:, :1].ravel(), Y), (X, Y[:10]), (np.where(X > 1.9, np.nan, X), Y),
                         (X, np.where(Y > 0.99, np.inf, Y))]:
        with pytest.raises(ValueError):
            GPResidual().fit(bad_x, bad_y)
    for bad in (np.zeros(3), np.array([np.nan, 0.0]), np.zeros((2, 3))):
        with pytest.raises(ValueError):
            gp.predict(bad)
    for kw in ({"length_scale": [1.0, -1.0]}, {"signal_std": 0.0}, {"noise_std": np.nan}):
        with pytest.raises(ValueError):
            GPResidual(**kw)
    with pytest.raises(ValueError):
        GPResidual(length_scale=[1.0, 1.0, 1.0]).fit(X, Y)
    with pytest.raises(RuntimeError):
        GPResidual().predict(np.zeros(2))


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_is_rejected_and_never_returns_nan(panda):
    for mode in ("velocity", "effort"):
        rob = RobustSafetyFilter(panda, small_constraints(), mode=mode,
                                 residual=lambda x: (np.zeros(panda.n), np.full(panda.n, 0.1)), kappa=0.02)
        v = np.full(panda.n, 0.5)
        for q, u in [(panda.home, np.full(panda.n, np.nan)), (np.full(panda.n, np.inf), np.zeros(panda.n)),
                     (panda.home, np.zeros(3)), (np.zeros(4), np.zeros(panda.n))]:
            out = rob.step(q, v, u)
            assert out.status == "rejected" and np.all(np.isfinite(out.u)) and out.u.shape == (panda.n,)
        assert rob.rejected == 4
    # a residual model that fails or returns NaN: no bound, so the filter brakes
    for residual in (lambda x: (np.zeros(panda.n), np.full(panda.n, np.nan)),
                     lambda x: (np.zeros(3), np.zeros(3)),
                     lambda x: (np.zeros(panda.n), -np.ones(panda.n)),
                     lambda x: 1 / 0):
        rob = RobustSafetyFilter(panda, small_constraints(), mode="effort", residual=residual)
        out = rob.step(panda.home, np.zeros(panda.n), panda.gravity(panda.home))
        assert out.status == "brake" and np.all(np.isfinite(out.u)) and rob.fallbacks == 1
    with pytest.raises(ValueError):
        RobustSafetyFilter(panda, small_constraints(), beta=-1.0)
    with pytest.raises(ValueError):
        RobustSafetyFilter(panda, small_constraints(), mode="velocity", gain_ref="bias")
    gp = GPResidual(optimize=False).fit(np.zeros((3, 4)) + np.arange(3)[:, None], np.zeros((3, 2)))
    with pytest.raises(ValueError):  # trained on other features than [q, q̇]
        RobustSafetyFilter(panda, small_constraints(), residual=gp)
