"""Compiled kernels of the safety filter's hot path (numba, cached on disk).

Each kernel writes the rows of one constraint straight into the filter's preallocated
buffers, so a filter step makes a handful of calls instead of hundreds of small numpy
operations. The math is documented in robot_ctrl.safety.constraints (barrier rows) and
robot_ctrl.safety.geometry (witness-point Jacobians); tests compare the kernels with
finite differences and with the cvxpy reference.

Conventions: J, dJ are pinocchio's world Jacobian and its time derivative (6 x n, controlled
joint order, linear rows first); mask[j, k] = 1 when joint k moves the body of joint j.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_CACHE = True


@njit(cache=_CACHE)
def barrier_rows(h, hdot, G, drift, a, alpha, T, eps, recover, velocity_mode, dt, A, b):
    """Rows for barriers h with ḣ = G q̇ (and ḧ = G q̈ + drift).

    velocity mode:  −G u ≤ min(α' h_e, √(2 a h_e)), h_e = h − T·max(0, −ḣ) with ḣ the measured
                    rate: what is left after the robot's velocity loop reacts for T
                    (α' = min(α, 1/dt); the √ term only for h_e > 0)
    effort mode:    braking barrier  −c G q̈ ≤ c·drift + max(α h_b + ḣ, −c·recover·a),
                    s = max(0, −ḣ), h_b = h − s T − s²/(2a), c = max(T + s/a, ε/a),
                    written divided by c (> 0).
    a, T: per-row arrays. Returns nothing; fills A (k, n) and b (k,).
    """
    k, n = G.shape
    if velocity_mode:
        ae = min(alpha, 1.0 / dt)
        for i in range(k):
            for j in range(n):
                A[i, j] = -G[i, j]
            s = -hdot[i]
            he = h[i] - (s * T[i] if s > 0.0 else 0.0)
            r = ae * he
            if he > 0.0:
                sq = np.sqrt(2.0 * a[i] * he)
                if sq < r:
                    r = sq
            b[i] = r
        return
    for i in range(k):
        s = -hdot[i]
        if s < 0.0:
            s = 0.0
        ai = a[i]
        hb = h[i] - s * T[i] - s * s / (2.0 * ai)
        c = T[i] + s / ai
        if c < eps / ai:
            c = eps / ai
        # divided through by c: the row reads −ḧ ≤ ..., in units of acceleration, so that
        # a relaxed QP weighs the slack of every barrier alike (c ranges over 1e-3..1)
        for j in range(n):
            A[i, j] = -G[i, j]
        r = alpha * hb + hdot[i]
        lo = -c * recover * ai
        if r < lo:
            r = lo
        b[i] = drift[i] + r / c


@njit(cache=_CACHE)
def normal_gradients(normals, points, joints, J, mask, out):
    """out[i] = nᵢᵀ J_pᵢ = nᵀJv − (n × p)ᵀ Jω over the joints that move point i."""
    m = normals.shape[0]
    n = J.shape[1]
    for i in range(m):
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        cx = ny * pz - nz * py
        cy = nz * px - nx * pz
        cz = nx * py - ny * px
        jt = joints[i]
        for k in range(n):
            g = nx * J[0, k] + ny * J[1, k] + nz * J[2, k] - (cx * J[3, k] + cy * J[4, k] + cz * J[5, k])
            out[i, k] = g * mask[jt, k]


@njit(cache=_CACHE)
def _drift_one(nx, ny, nz, px, py, pz, jt, J, dJ, mask, v):
    """nᵀ J̇_p q̇ of one point: a_p = J̇v q̇ − p × (J̇ω q̇) − ṗ × ω, ṗ = Jv q̇ − p × ω."""
    n = J.shape[1]
    wx = wy = wz = 0.0
    vx = vy = vz = 0.0
    ax = ay = az = 0.0
    bx = by = bz = 0.0
    for k in range(n):
        mv = mask[jt, k] * v[k]
        if mv != 0.0:
            vx += J[0, k] * mv
            vy += J[1, k] * mv
            vz += J[2, k] * mv
            wx += J[3, k] * mv
            wy += J[4, k] * mv
            wz += J[5, k] * mv
            ax += dJ[0, k] * mv
            ay += dJ[1, k] * mv
            az += dJ[2, k] * mv
            bx += dJ[3, k] * mv
            by += dJ[4, k] * mv
            bz += dJ[5, k] * mv
    pdx = vx - (py * wz - pz * wy)
    pdy = vy - (pz * wx - px * wz)
    pdz = vz - (px * wy - py * wx)
    accx = ax - (py * bz - pz * by) - (pdy * wz - pdz * wy)
    accy = ay - (pz * bx - px * bz) - (pdz * wx - pdx * wz)
    accz = az - (px * by - py * bx) - (pdx * wy - pdy * wx)
    return nx * accx + ny * accy + nz * accz


@njit(cache=_CACHE)
def normal_drifts(normals, points, joints, J, dJ, mask, v, out):
    """out[i] = nᵢᵀ J̇_pᵢ q̇, the point accelerations along nᵢ at q̈ = 0."""
    for i in range(normals.shape[0]):
        out[i] = _drift_one(normals[i, 0], normals[i, 1], normals[i, 2], points[i, 0], points[i, 1],
                            points[i, 2], joints[i], J, dJ, mask, v)


@njit(cache=_CACHE)
def pair_gradients(normal, p1, p2, ra, rb, ja, jb, self_pair, J, mask, G, core1, core2):
    """∂d/∂q of every pair into G (P, n): −n·J_p1 (+ n·J_p2 for self pairs), with the
    witness points moved onto the shapes' cores (p1 − r_a n, p2 + r_b n) into core1/core2."""
    P = normal.shape[0]
    n = J.shape[1]
    tmp = np.empty((1, n))
    for i in range(P):
        for r in range(3):
            core1[i, r] = p1[i, r] - ra[i] * normal[i, r]
            core2[i, r] = p2[i, r] + rb[i] * normal[i, r]
    normal_gradients(normal, core1, ja, J, mask, G)
    for i in range(P):
        for k in range(n):
            G[i, k] = -G[i, k]
        if self_pair[i]:
            normal_gradients(normal[i:i + 1], core2[i:i + 1], jb[i:i + 1], J, mask, tmp)
            for k in range(n):
                G[i, k] += tmp[0, k]


@njit(cache=_CACHE)
def pair_drifts(normal, core1, core2, ja, jb, self_pair, J, dJ, mask, v, out):
    """d̈ at q̈ = 0 of every pair (normal-rate term left out): −n·a_core1 (+ n·a_core2)."""
    for i in range(normal.shape[0]):
        nx, ny, nz = normal[i, 0], normal[i, 1], normal[i, 2]
        a = -_drift_one(nx, ny, nz, core1[i, 0], core1[i, 1], core1[i, 2], ja[i], J, dJ, mask, v)
        if self_pair[i]:
            a += _drift_one(nx, ny, nz, core2[i, 0], core2[i, 1], core2[i, 2], jb[i], J, dJ, mask, v)
        out[i] = a


@njit(cache=_CACHE)
def map_rows_to_torque(A_nat, b, Minv, bias, k, A):
    """A[:k] = A_nat[:k] M⁻¹ and b[:k] += A[:k] h (rows on q̈ onto τ, q̈ = M⁻¹(τ − h));
    A[k:] = A_nat[k:] (rows already on τ). Minv: upper triangle filled (pinocchio)."""
    m, n = A_nat.shape
    for i in range(n):
        for j in range(i):
            Minv[i, j] = Minv[j, i]
    for r in range(k):
        acc = 0.0
        for j in range(n):
            s = 0.0
            for l in range(n):
                s += A_nat[r, l] * Minv[l, j]
            A[r, j] = s
            acc += s * bias[j]
        b[r] += acc
    for r in range(k, m):
        for j in range(n):
            A[r, j] = A_nat[r, j]


@njit(cache=_CACHE)
def workspace_rows(p, base, lo, hi, joint, J, dJ, mask, v, effort, a, T, alpha, eps, recover, dt,
                   nrm, pts, jts, G, hdot, drift, h, A, b):
    """Workspace box rows for a point p (pinocchio frame) on `joint`: h = p − lo (rows 0-2),
    hi − p (rows 3-5) in the world frame (p + base), gradients ±J_p, then barrier_rows."""
    for r in range(3):
        pw = p[r] + base[r]
        h[r] = pw - lo[r]
        h[3 + r] = hi[r] - pw
    for i in range(6):
        for c in range(3):
            pts[i, c] = p[c]
    normal_gradients(nrm, pts, jts, J, mask, G)
    n = G.shape[1]
    for i in range(6):
        s = 0.0
        for k in range(n):
            s += G[i, k] * v[k]
        hdot[i] = s
    if effort:
        normal_drifts(nrm, pts, jts, J, dJ, mask, v, drift)
    barrier_rows(h, hdot, G, drift, a, alpha, T, eps, recover, not effort, dt, A, b)


@njit(cache=_CACHE)
def all_finite(A, b):
    """True when every entry of A and b is finite."""
    for i in range(A.shape[0]):
        if not np.isfinite(b[i]):
            return False
        for j in range(A.shape[1]):
            if not np.isfinite(A[i, j]):
                return False
    return True


@njit(cache=_CACHE)
def residual(A, u, b, r):
    """r = A u − b; returns (max r, max |b|)."""
    rmax = -np.inf
    bmax = 0.0
    for i in range(A.shape[0]):
        s = -b[i]
        for j in range(A.shape[1]):
            s += A[i, j] * u[j]
        r[i] = s
        if s > rmax:
            rmax = s
        ab = abs(b[i])
        if ab > bmax:
            bmax = ab
    return rmax, bmax


@njit(cache=_CACHE)
def symmetrize_upper(M):
    """Copy the upper triangle onto the lower one, in place (pinocchio fills only the upper)."""
    n = M.shape[0]
    for i in range(n):
        for j in range(i):
            M[i, j] = M[j, i]


def warm_up() -> None:
    """Compile (or load from the cache) every kernel once, before any control loop runs."""
    n = 2
    J = np.zeros((6, n))
    mask = np.ones((2, n))
    P = 1
    nrm = np.zeros((P, 3))
    pts = np.zeros((P, 3))
    jts = np.zeros(P, dtype=np.int64)
    G = np.zeros((P, n))
    out = np.zeros(P)
    barrier_rows(np.ones(P), np.zeros(P), G, np.zeros(P), np.ones(P), 1.0, np.zeros(P), 0.02, 3.0, True, 0.002,
                 np.zeros((P, n)), np.zeros(P))
    barrier_rows(np.ones(P), np.zeros(P), G, np.zeros(P), np.ones(P), 1.0, np.zeros(P), 0.02, 3.0, False, 0.002,
                 np.zeros((P, n)), np.zeros(P))
    c1, c2 = np.zeros((P, 3)), np.zeros((P, 3))
    pair_gradients(nrm, pts, pts, np.zeros(P), np.zeros(P), jts, jts, np.zeros(P, dtype=np.bool_), J, mask, G, c1, c2)
    pair_drifts(nrm, c1, c2, jts, jts, np.zeros(P, dtype=np.bool_), J, J, mask, np.zeros(n), out)
    normal_drifts(nrm, pts, jts, J, J, mask, np.zeros(n), out)
    symmetrize_upper(np.zeros((n, n)))
    all_finite(np.zeros((2, n)), np.zeros(2))
    residual(np.zeros((2, n)), np.zeros(n), np.zeros(2), np.zeros(2))
    six = np.zeros(6)
    workspace_rows(np.zeros(3), np.zeros(3), -np.ones(3), np.ones(3), 1, J, J, mask, np.zeros(n), True, np.ones(6),
                   six, 1.0, 0.02, 3.0, 0.002, np.zeros((6, 3)), np.zeros((6, 3)), np.ones(6, dtype=np.int64),
                   np.zeros((6, n)), np.zeros(6), np.zeros(6), np.zeros(6), np.zeros((6, n)), np.zeros(6))
    map_rows_to_torque(np.zeros((2, n)), np.zeros(2), np.eye(n), np.zeros(n), 1, np.zeros((2, n)))
