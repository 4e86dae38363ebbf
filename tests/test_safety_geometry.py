"""Safety geometry (issue 3, second part): capsule fits, coal distances against independent
computations (link poses from MuJoCo's forward kinematics), distance gradients and drifts
against finite differences, obstacle poses, config errors, and the speed-and-separation and
collision rows inside the filter. Real pinocchio / coal / MuJoCo, no mocks."""
from __future__ import annotations

import mujoco
import numpy as np
import pinocchio as pin
import pytest
import yaml

from robot_ctrl.safety import (
    CollisionDistance,
    DistanceSet,
    GeometryConfigError,
    Kinematics,
    SafetyFilter,
    SpeedSeparation,
    fit_capsule,
)
from robot_ctrl.safety.config import SafetyConfigError, build_filter, load_safety_config, safety_yaml_path
from robot_ctrl.safety.geometry import link_collision_vertices
from robot_ctrl.sim.world import ROBOT_PREFIX, build_world

MESH_LINKS = ["panda_link0", "panda_link1", "panda_link2", "panda_link3", "panda_link4", "panda_link5",
              "panda_link6", "panda_link7", "panda_hand"]  # the fingers have no collision mesh


# --------------------------------------------------------------------------------------------
# helpers (independent of robot_ctrl.safety.geometry)
# --------------------------------------------------------------------------------------------
def seg_dist(p, a, b):
    """Distance of points p (..., 3) from the segment [a, b]."""
    ab = b - a
    L2 = float(ab @ ab)
    t = np.zeros(np.shape(p)[:-1]) if L2 == 0 else np.clip(((p - a) @ ab) / L2, 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def sep_distance(ssm, v):
    """ISO/TS 15066 protective separation distance S_p(v) with the constraint's parameters."""
    return (ssm.v_human * (ssm.t_react + ssm.t_stop) + v * ssm.t_react + v * v / (2.0 * ssm.a_brake)
            + ssm.intrusion + ssm.uncertainty)


def random_q(robot, rng, frac=0.05):
    span = robot.q_max - robot.q_min
    return rng.uniform(robot.q_min + frac * span, robot.q_max - frac * span)


def distances(dset, kin, q):
    kin.update(q)
    return dset.compute().d.copy()  # compute() reuses its arrays


def grads(dset, kin, q):
    kin.update(q)
    g = dset.compute()
    G, _ = dset.gradients(kin, g)
    return G.copy()


def ik_position(robot, q, target, iters=200):
    """Move the end effector to `target` (world) keeping its orientation (Gauss-Newton)."""
    q = q.copy()
    R0 = robot.fk(q)[:3, :3]
    for _ in range(iters):
        T = robot.fk(q)
        err = np.concatenate([target - T[:3, 3], pin.log3(R0 @ T[:3, :3].T)])
        if np.linalg.norm(err) < 1e-10:
            break
        q[:7] += np.linalg.pinv(robot.jacobian(q)[:, :7]) @ err
    return q


class MjFK:
    """Link poses from MuJoCo's forward kinematics of the table scene (its own URDF import)."""

    def __init__(self, robot):
        self.robot = robot
        self.model = build_world(robot, "table", "velocity")
        self.data = mujoco.MjData(self.model)
        self.adr = [self.model.joint(ROBOT_PREFIX + j).qposadr[0] for j in robot.joint_names]
        g = self.model.geom("table_top")
        self.table_pos = self.model.body("table").pos + g.pos
        self.table_size = 2.0 * g.size.copy()
        self.table_top = float(self.table_pos[2] + g.size[2])

    def above_table(self, p, margin=0.01):
        """(..., 3) points above the interior of the table top (x, y inside by `margin`)."""
        inside = np.abs(np.asarray(p)[..., :2] - self.table_pos[:2]) < 0.5 * self.table_size[:2] - margin
        return inside.all(axis=-1)

    def set(self, q):
        self.data.qpos[self.adr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def pose(self, link):
        b = self.model.body(ROBOT_PREFIX + link).id
        return self.data.xmat[b].reshape(3, 3).copy(), self.data.xpos[b].copy()


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cfg():
    return load_safety_config("panda")


@pytest.fixture(scope="module")
def coll(panda, cfg):
    return CollisionDistance(panda, **cfg.constraints["collision"])


@pytest.fixture(scope="module")
def mjfk(panda):
    return MjFK(panda)


@pytest.fixture(scope="module")
def capsules(panda, cfg):
    """link -> (a, b, r) in the link frame, from the config (mesh fits via fit_capsule)."""
    out = {}
    for link, spec in cfg.constraints["collision"]["links"].items():
        if "capsule" not in spec:  # the convex hulls ("frame#hull") of the wrist pairs
            continue
        cap = spec["capsule"]
        if cap == "mesh":
            out[link] = fit_capsule(link_collision_vertices(panda, link))
        else:
            out[link] = (np.array(cap["a"], float), np.array(cap["b"], float), float(cap["radius"]))
    return out


# --------------------------------------------------------------------------------------------
# 1. capsule fit
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("link", MESH_LINKS)
def test_fit_capsule_covers_the_collision_mesh_tightly(panda, link):
    V = link_collision_vertices(panda, link)
    a, b, r = fit_capsule(V)
    assert len(V) > 100 and 0.005 < r < 0.2
    dist = seg_dist(V, a, b)
    assert dist.max() <= r + 1e-9  # every vertex inside
    assert dist.max() >= r - 1e-9  # the radius is tight: some vertex on the surface
    # the end points are tight too: shortening the segment at either end uncovers a vertex
    if np.linalg.norm(b - a) > 1e-6:
        u = (b - a) / np.linalg.norm(b - a)
        assert seg_dist(V, a + 1e-4 * u, b).max() > r + 1e-12
        assert seg_dist(V, a, b - 1e-4 * u).max() > r + 1e-12


def test_fit_capsule_recovers_a_known_capsule_and_covers_any_cloud():
    # rings on a capsule of radius 0.1 from A to B (in a rotated, shifted frame): exact recovery
    R = pin.rpy.rpyToMatrix(0.3, -0.7, 1.1)
    off = np.array([0.2, -0.1, 0.5])
    pts = []
    th = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for z in np.linspace(0.0, 0.4, 9):
        pts += [[0.1 * np.cos(t), 0.1 * np.sin(t), z] for t in th]
    for phi in np.linspace(0.2, np.pi / 2, 5):  # hemispherical caps
        for t in th:
            c, s = 0.1 * np.cos(phi), 0.1 * np.sin(phi)
            pts += [[c * np.cos(t), c * np.sin(t), -s], [c * np.cos(t), c * np.sin(t), 0.4 + s]]
    V = np.array(pts) @ R.T + off
    a, b, r = fit_capsule(V)
    A, B = off, R @ [0, 0, 0.4] + off
    if np.linalg.norm(a - A) > np.linalg.norm(a - B):
        a, b = b, a
    assert r == pytest.approx(0.1, abs=1e-9)
    np.testing.assert_allclose(a, A, atol=1e-9)
    np.testing.assert_allclose(b, B, atol=1e-9)
    # random clouds (elongated, flat, round): always covered, always tight
    rng = np.random.default_rng(0)
    for scale in ([1.0, 0.1, 0.1], [1.0, 1.0, 0.05], [1.0, 1.0, 1.0]):
        V = rng.normal(size=(300, 3)) * scale
        if scale == [1.0, 1.0, 1.0]:
            V /= np.linalg.norm(V, axis=1, keepdims=True)  # on a sphere: the fit is about a sphere
        a, b, r = fit_capsule(V)
        dist = seg_dist(V, a, b)
        assert r - 1e-9 <= dist.max() <= r + 1e-9


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((5, 2)), np.zeros((1, 3)), np.zeros((2, 3, 1)), [[1.0, 2.0]]])
def test_fit_capsule_rejects_bad_input(bad):
    with pytest.raises(GeometryConfigError, match=r"\(N, 3\) array of vertices"):
        fit_capsule(bad)


def test_link_collision_vertices_errors(panda):
    with pytest.raises(GeometryConfigError, match="link 'panda_link99' is not in the URDF of panda"):
        link_collision_vertices(panda, "panda_link99")
    for link in ("panda_hand_tcp", "panda_leftfinger"):
        with pytest.raises(GeometryConfigError, match=f"'{link}' of panda has no collision mesh"):
            link_collision_vertices(panda, link)


# --------------------------------------------------------------------------------------------
# 2. distances against an independent computation
# --------------------------------------------------------------------------------------------
def test_capsule_geometry_in_the_distance_set_matches_the_config(coll, capsules):
    for link, (a, b, r) in capsules.items():
        shape = coll.set.gm.geometryObjects[coll.set.gid[link]].geometry
        assert shape.radius == pytest.approx(r, abs=1e-12)
        assert 2.0 * shape.halfLength == pytest.approx(np.linalg.norm(b - a), abs=1e-12)


def test_link_to_table_and_sphere_distances_match_independent_geometry(panda, cfg, coll, mjfk, capsules):
    dset = coll.set
    kin = Kinematics(panda)
    # the config's table is the plane of the MuJoCo scene's table top (z = 0)
    world = cfg.constraints["collision"]["world"]
    np.testing.assert_allclose(world["table"]["halfspace"], [0.0, 0.0, 1.0, mjfk.table_top], atol=1e-12)
    assert mjfk.table_top == pytest.approx(0.0, abs=1e-12)
    obstacle, r_obst = np.array(world["obstacle"]["pos"], float), float(world["obstacle"]["sphere"])
    rng = np.random.default_rng(2)
    checked_table = checked_sphere = 0
    for _ in range(60):
        q = random_q(panda, rng)
        kin.update(q)
        g = dset.compute()
        mjfk.set(q)
        for i, (link, other) in enumerate(dset.pairs):
            if other not in ("table", "obstacle"):
                continue
            if other == "table":
                # a capsule meets the table plane through its two end spheres, one row each
                link, end = link.split("@")
                a, b, r = capsules[link]
                R, p = mjfk.pose(link)
                E = R @ (a if end == "a" else b) + p
                assert g.d[i] == pytest.approx(E[2] - r - mjfk.table_top, abs=1e-9), (link, end, q)
                np.testing.assert_allclose(g.normal[i], [0, 0, -1], atol=1e-9)
                np.testing.assert_allclose(g.p1[i], E - [0, 0, r], atol=1e-8)
                checked_table += 1
                continue
            a, b, r = capsules[link]
            R, p = mjfk.pose(link)
            A, B = R @ a + p, R @ b + p
            expect = seg_dist(obstacle, A, B) - r_obst - r
            if expect < 0.005:
                continue
            assert g.d[i] == pytest.approx(expect, abs=1e-9), (link, q)
            # the witness point is on the capsule, the normal points towards the sphere
            assert seg_dist(g.p1[i], A, B) == pytest.approx(r, abs=1e-8)
            assert np.linalg.norm(g.p1[i] + g.d[i] * g.normal[i] - obstacle) == pytest.approx(r_obst, abs=1e-8)
            checked_sphere += 1
    assert checked_table >= 150 and checked_sphere >= 200, (checked_table, checked_sphere)


def test_self_pair_witnesses_and_pair_order(panda, mjfk, capsules):
    """A self pair given either way round: same distance, gradient and drift; the normal points
    from the first body to the second; both witness points lie on their capsules."""
    links = {k: {"capsule": "mesh"} for k in ("panda_hand", "panda_link1")}
    one = DistanceSet(panda, links, {}, [("panda_hand", "panda_link1")])
    other = DistanceSet(panda, links, {}, [("panda_link1", "panda_hand")])
    kin = Kinematics(panda)
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(10):
        q = random_q(panda, rng)
        v = rng.uniform(-1.0, 1.0, panda.n)
        kin.update(q, v)
        g1, g2 = one.compute(), other.compute()
        if g1.d[0] < 0.01:
            continue
        G1, acc1 = one.gradients(kin, g1, drift=True)
        G2, acc2 = other.gradients(kin, g2, drift=True)
        assert g1.d[0] == pytest.approx(g2.d[0], abs=1e-12)
        np.testing.assert_allclose(g1.normal[0], -g2.normal[0], atol=1e-12)
        np.testing.assert_allclose(g1.p1[0], g2.p2[0], atol=1e-12)
        np.testing.assert_allclose(g1.p2[0], g2.p1[0], atol=1e-12)
        np.testing.assert_allclose(G1[0], G2[0], atol=1e-12)
        assert acc1[0] == pytest.approx(acc2[0], abs=1e-12)
        g = g1
        mjfk.set(q)
        seg = {}
        for link in links:
            a, b, r = capsules[link]
            R, p = mjfk.pose(link)
            seg[link] = (R @ a + p, R @ b + p, r)
        A, B, r = seg["panda_hand"]
        assert seg_dist(g.p1[0], A, B) == pytest.approx(r, abs=1e-8)
        A, B, r = seg["panda_link1"]
        assert seg_dist(g.p2[0], A, B) == pytest.approx(r, abs=1e-8)
        np.testing.assert_allclose(g.p1[0] + g.d[0] * g.normal[0], g.p2[0], atol=1e-8)
        checked += 1
    assert checked >= 5


# --------------------------------------------------------------------------------------------
# 3. gradients against finite differences
# --------------------------------------------------------------------------------------------
def test_distance_gradients_match_central_differences(panda, coll):
    dset = coll.set
    kin = Kinematics(panda)
    rng = np.random.default_rng(5)
    eps = 1e-6
    n_env = n_self = 0
    for _ in range(8):
        q = random_q(panda, rng)
        d = distances(dset, kin, q)
        G = grads(dset, kin, q)
        fd = np.stack([(distances(dset, kin, q + eps * e) - distances(dset, kin, q - eps * e)) / (2 * eps)
                       for e in np.eye(panda.n)], axis=1)
        ok = d > 0.03  # well separated
        for i in np.flatnonzero(ok):
            scale = max(1.0, np.abs(fd[i]).max())
            np.testing.assert_allclose(G[i], fd[i], rtol=0, atol=1e-5 * scale, err_msg=f"{dset.pairs[i]} at {q}")
        n_self += int((ok & dset.self_pairs).sum())
        n_env += int((ok & ~dset.self_pairs).sum())
        # the gradients are not trivially zero: the robot side always moves with the arm joints
        assert np.all(np.abs(G[ok][:, :7]).max(axis=1) > 1e-3)
    assert n_env >= 80 and n_self >= 25, (n_env, n_self)


# --------------------------------------------------------------------------------------------
# 4. drifts
# --------------------------------------------------------------------------------------------
def test_table_pair_drift_is_the_rate_of_the_gradient_along_the_velocity(panda, coll, mjfk):
    """For link-vs-table pairs above the table top (constant normal), the drift is exact:
    d/dt (G(q + t v) v) at t = 0 = d̈ at q̈ = 0."""
    dset = coll.set
    kin = Kinematics(panda)
    rng = np.random.default_rng(7)
    table = np.array([other == "table" for _, other in dset.pairs])
    eps = 1e-6
    checked = 0
    for _ in range(12):
        q = random_q(panda, rng)
        v = rng.uniform(-1.0, 1.0, panda.n) * np.minimum(panda.v_max, 2.0)
        kin.update(q, v)
        g = dset.compute()
        _, acc = dset.gradients(kin, g, drift=True)
        acc = acc.copy()
        inside = (np.abs(g.normal - [0, 0, -1]).max(axis=1) < 1e-12) & (g.d > 0.01) & mjfk.above_table(g.p1)
        sel = table & inside
        fd = (grads(dset, kin, q + eps * v) @ v - grads(dset, kin, q - eps * v) @ v) / (2 * eps)
        # and, independently of G, the second difference of d along v
        t = 1e-4
        d2 = (distances(dset, kin, q + t * v) - 2 * distances(dset, kin, q) + distances(dset, kin, q - t * v)) / t**2
        for i in np.flatnonzero(sel):
            assert acc[i] == pytest.approx(fd[i], abs=1e-5 * max(1.0, abs(fd[i]))), (dset.pairs[i], q, v)
            assert acc[i] == pytest.approx(d2[i], abs=1e-4 * max(1.0, abs(d2[i]))), (dset.pairs[i], q, v)
        checked += int(sel.sum())
    assert checked >= 30, checked


@pytest.mark.parametrize("link", ["panda_link3", "panda_link7", "panda_hand", "panda_leftfinger"])
def test_point_jacobian_and_drift_match_finite_differences(panda, link):
    kin = Kinematics(panda)
    fid = panda.model.getFrameId(link)
    joint = panda.model.frames[fid].parentJoint
    local = np.array([0.03, -0.02, 0.05])

    def pos(q):  # the point's world position (pinocchio world = robot base, base_pos = 0 here)
        return panda.fk(q, link)[:3, :3] @ local + panda.fk(q, link)[:3, 3] - panda.base_pos

    rng = np.random.default_rng(11)
    for _ in range(3):
        q = random_q(panda, rng)
        v = rng.uniform(-1.0, 1.0, panda.n) * np.minimum(panda.v_max, 2.0)
        p = pos(q)
        kin.update(q, v)
        J = kin.point_jacobian(p, joint)
        a = kin.point_drift(p, joint)
        h = 1e-6
        Jfd = np.stack([(pos(q + h * e) - pos(q - h * e)) / (2 * h) for e in np.eye(panda.n)], axis=1)
        np.testing.assert_allclose(J, Jfd, rtol=0, atol=1e-8)
        # the frame origin's Jacobian is pinocchio's LOCAL_WORLD_ALIGNED frame Jacobian
        o = panda.fk(q, link)[:3, 3] - panda.base_pos
        np.testing.assert_allclose(kin.point_jacobian(o, joint), panda.jacobian(q, link)[:3], atol=1e-12)
        # drift = d/dt (J(q + t v) v) = d²/dt² p(q + t v) at t = 0
        t = 1e-4
        afd = (pos(q + t * v) - 2 * p + pos(q - t * v)) / t**2
        np.testing.assert_allclose(a, afd, rtol=0, atol=1e-6 * max(1.0, np.abs(afd).max()))
        kin.update(q + 1e-6 * v)
        Jp = kin.point_jacobian(pos(q + 1e-6 * v), joint)
        kin.update(q - 1e-6 * v)
        Jm = kin.point_jacobian(pos(q - 1e-6 * v), joint)
        np.testing.assert_allclose(a, (Jp - Jm) @ v / 2e-6, rtol=0, atol=1e-7 * max(1.0, np.abs(a).max()))


# --------------------------------------------------------------------------------------------
# 5. moving a world object
# --------------------------------------------------------------------------------------------
def test_set_world_pose_moves_the_obstacle(panda, mjfk):
    dset = DistanceSet(panda, {"panda_hand": {"capsule": "mesh"}},
                       {"ball": {"sphere": 0.05, "pos": [0.6, 0.0, 0.6]}}, [("panda_hand", "ball")])
    a, b, r = fit_capsule(link_collision_vertices(panda, "panda_hand"))
    kin = Kinematics(panda)
    q = panda.home
    mjfk.set(q)
    R, p = mjfk.pose("panda_hand")
    A, B = R @ a + p, R @ b + p
    kin.update(q)
    before = dset.compute().d[0]
    assert before == pytest.approx(seg_dist(np.array([0.6, 0.0, 0.6]), A, B) - 0.05 - r, abs=1e-9)
    last = before
    for x in (0.7, 0.8, 1.0):  # straight away from the hand: the distance grows by the move
        dset.set_world_pose("ball", [x, 0.0, 0.6], [0.0, 0.0, 0.0, 1.0])
        np.testing.assert_allclose(dset.world_position("ball"), [x, 0.0, 0.6])
        d = dset.compute().d[0]
        assert d == pytest.approx(seg_dist(np.array([x, 0.0, 0.6]), A, B) - 0.05 - r, abs=1e-9)
        assert d > last
        last = d
    dset.set_world_pose("ball", [0.6, 0.0, 0.6])
    assert dset.compute().d[0] == pytest.approx(before, abs=1e-12)
    # bad poses leave the object where it was
    dset.set_world_pose("ball", [0.8, 0.0, 0.6])
    for pos, quat in (([np.nan, 0, 0.6], None), ([0.6, np.inf, 0.6], None), ([0.6, 0.0], None),
                      ([0.6, 0.0, 0.6], [np.nan, 0, 0, 1])):
        with pytest.raises(ValueError, match="pose of 'ball' must be finite"):
            dset.set_world_pose("ball", pos, quat)
    np.testing.assert_allclose(dset.world_position("ball"), [0.8, 0.0, 0.6])
    assert dset.compute().d[0] == pytest.approx(seg_dist(np.array([0.8, 0.0, 0.6]), A, B) - 0.05 - r, abs=1e-9)
    with pytest.raises(KeyError, match="no world object 'table' \\(have: ball\\)"):
        dset.set_world_pose("table", [0, 0, 0])
    with pytest.raises(KeyError, match="no world object 'panda_hand'"):  # a link is not a world object
        dset.set_world_pose("panda_hand", [0, 0, 0])


def test_rotating_a_box_obstacle(panda):
    """A thin pole under the hand: upright its top is close to the hand, laid flat (90° about x)
    it is far; a turn about its own (z) axis changes nothing. Quaternions are (x, y, z, w)."""
    dset = DistanceSet(panda, {"panda_hand": {"sphere": {"center": [0, 0, 0], "radius": 0.01}}},
                       {"pole": {"box": [0.02, 0.02, 0.6]}}, [("panda_hand", "pole")])
    kin = Kinematics(panda)
    kin.update(panda.home)
    hand = panda.fk(panda.home, "panda_hand")[:3, 3]
    below = hand - [0.0, 0.0, 0.45]
    s = np.sin(np.pi / 4)
    for quat, expect in ((None, 0.15 - 0.01), ([0.0, 0.0, s, s], 0.15 - 0.01), ([s, 0.0, 0.0, s], 0.44 - 0.01),
                         ([0.0, s, 0.0, s], 0.44 - 0.01), ([0.0, 0.0, 0.0, 2.0], 0.15 - 0.01)):
        dset.set_world_pose("pole", below, quat)
        assert dset.compute().d[0] == pytest.approx(expect, abs=1e-9), quat


# --------------------------------------------------------------------------------------------
# 6. config errors
# --------------------------------------------------------------------------------------------
def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc) if isinstance(doc, dict) else doc)
    return str(p)


def over_panda(**constraints):
    return {"include": str(safety_yaml_path("panda").resolve()), "constraints": constraints}


@pytest.mark.parametrize("doc,match", [
    ({"robot": "panda", "constraints": {"joint_position": {}, "colision": {}}},
     r"unknown constraints colision \(known: joint_position, "),
    ({"robot": "panda", "constraint": {"joint_position": {}}, "constraints": {"joint_velocity": {}}},
     r"unknown keys constraint \(known: brake_deceleration, constraints, robot, weights\)"),
    ({"constraints": {"joint_velocity": {}}}, r"'robot' \(the robot config name\) is required"),
    ({"robot": "panda", "constraints": {}}, r"'constraints' must be a non-empty mapping"),
    ({"robot": "panda", "constraints": {"workspace": [1, 2]}}, r"constraints.workspace must be a mapping"),
    ("robot: panda\nconstraints: [", r"invalid YAML"),
])
def test_config_file_errors(tmp_path, doc, match):
    path = write(tmp_path, "bad.yaml", doc)
    with pytest.raises(SafetyConfigError, match=match) as exc:
        load_safety_config(path)
    assert path in str(exc.value)  # the message names the file


COLLISION_ERRORS = [
    ({"links": {"panda_link99": {"capsule": "mesh"}}},
     r"constraints.collision: safety collision link 'panda_link99' is not a frame of panda"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "self_pairs": [["panda_hand", "panda_link99"]]},
     r"safety collision pair \('panda_hand', 'panda_link99'\): 'panda_link99' has no shape"),
    # the hand is fixed to link 7: one body
    ({"links": {"panda_hand": {"capsule": "mesh"}, "panda_link7": {"capsule": "mesh"}},
      "self_pairs": [["panda_hand", "panda_link7"]]},
     r"safety collision pair \('panda_hand', 'panda_link7'\): both on the same body"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "world": {"table": {"box": [1, 1, 0.1], "sphere": 0.2}}},
     r"safety environment object 'table': give exactly one of box, sphere"),
    ({"links": {"panda_hand": {"sphere": {"center": [0, 0, 0], "radius": -0.05}}}},
     r"safety collision link 'panda_hand': 'radius' must be positive"),
    ({"links": {"panda_hand": {"capsule": {"a": [0, 0, 0], "b": [0, 0, 0.1], "radius": -0.05}}}},
     r"safety collision link 'panda_hand': 'radius' must be positive"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "world": {"ball": {"sphere": -0.1}}},
     r"safety environment object 'ball': 'sphere' must be positive"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "world": {"rod": {"capsule": [-0.1, 0.3]}}},
     r"safety environment object 'rod': capsule needs radius > 0"),
    ({"links": {"panda_hand": {"capsule": "mesh", "sphere": {"center": [0, 0, 0], "radius": 0.1}}}},
     r"safety collision link 'panda_hand': give exactly one of capsule, sphere, mesh"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "world": {"panda_hand": {"sphere": 0.1}}},
     r"safety environment object 'panda_hand' has the name of a link"),
    # one pair twice (either way round, or an extra pair that env_links already gives)
    ({"links": {"panda_hand": {"capsule": "mesh"}, "panda_link1": {"capsule": "mesh"}},
      "self_pairs": [["panda_hand", "panda_link1"], ["panda_link1", "panda_hand"]]},
     r"safety collision pair \('panda_link1', 'panda_hand'\) is listed twice"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "world": {"table": {"box": [1, 1, 0.1]}},
      "pairs": [["panda_hand", "table"]]},
     r"safety collision pair \('panda_hand', 'table'\) is listed twice"),
    ({"links": {"panda_hand": {"capsule": "mesh"}}, "dmin": 0.02},
     r"constraints.collision: .*unexpected keyword argument 'dmin'"),
]


@pytest.mark.parametrize("collision,match", COLLISION_ERRORS)
def test_collision_config_errors_name_the_problem(panda, tmp_path, collision, match):
    path = write(tmp_path, "bad.yaml", over_panda(collision=collision))
    cfg = load_safety_config(path)
    with pytest.raises(SafetyConfigError, match=match) as exc:
        build_filter(panda, cfg, mode="velocity")
    assert path in str(exc.value)


def test_config_for_another_robot(panda, tmp_path):
    path = write(tmp_path, "ur5.yaml", {"robot": "ur5", "constraints": {"joint_velocity": {}}})
    with pytest.raises(SafetyConfigError, match="written for robot 'ur5', not 'panda'"):
        build_filter(panda, path)


def test_home_that_violates_a_barrier(panda, tmp_path):
    # the hand's tool point is ~0.49 m high at home; a workspace floor at 0.6 excludes it
    path = write(tmp_path, "ws.yaml", over_panda(workspace={"lower": [-0.9, -0.9, 0.6], "upper": [1.0, 0.9, 1.3]}))
    for mode in ("velocity", "effort"):
        with pytest.raises(SafetyConfigError, match=r"the home configuration violates workspace_lower_z$"):
            build_filter(panda, path, mode=mode)
    # a ball around the hand at home: the message names the collision rows
    hand = panda.fk(panda.home, "panda_hand")[:3, 3]
    path = write(tmp_path, "ball.yaml", over_panda(collision={
        "links": {"panda_hand": {"capsule": "mesh"}, "panda_link7": {"capsule": "mesh"}},
        "world": {"ball": {"sphere": 0.05, "pos": hand.tolist()}}}))
    with pytest.raises(SafetyConfigError, match=r"the home configuration violates .*collision\[panda_hand\|ball\]"):
        build_filter(panda, path, mode="velocity")


def test_include_merges_and_the_including_file_wins(panda, tmp_path):
    base = load_safety_config("panda")
    mid = write(tmp_path, "mid.yaml", over_panda(joint_velocity={"scale": 0.5}, workspace=None))
    workspace = {"lower": [-0.5, -0.5, 0.1], "upper": [0.8, 0.5, 1.0]}
    top = write(tmp_path, "top.yaml", {"include": "mid.yaml", "weights": [2.0] * 9,
                                       "constraints": {"workspace": workspace}})
    cfg = load_safety_config(top)
    assert cfg.robot == "panda"
    assert cfg.weights == [2.0] * 9
    assert cfg.brake_deceleration == base.brake_deceleration  # from panda.yaml, two levels down
    assert list(cfg.constraints) == list(base.constraints)  # every constraint kept, in order
    assert cfg.constraints["joint_velocity"] == {"scale": 0.5}  # replaced whole, by name
    assert cfg.constraints["workspace"] == workspace
    assert cfg.constraints["collision"] == base.constraints["collision"]
    f = build_filter(panda, cfg, mode="velocity")
    byname = {type(c).__name__: c for c in f.constraints}
    assert byname["JointVelocityLimits"].scale == 0.5 and byname["WorkspaceBox"].lower == [-0.5, -0.5, 0.1]
    assert f.collision_pairs == CollisionDistance(panda, **base.constraints["collision"]).collision_pairs > 0


def test_include_cycle_and_missing_include(tmp_path):
    a = write(tmp_path, "a.yaml", {"include": "b.yaml", "robot": "panda", "constraints": {"effort": {}}})
    write(tmp_path, "b.yaml", {"include": "a.yaml"})
    with pytest.raises(SafetyConfigError, match="include cycle"):
        load_safety_config(a)
    me = write(tmp_path, "me.yaml", {"include": "me.yaml", "robot": "panda", "constraints": {"effort": {}}})
    with pytest.raises(SafetyConfigError, match="me.yaml: include cycle"):
        load_safety_config(me)
    gone = write(tmp_path, "gone.yaml", {"include": "nowhere.yaml", "robot": "panda", "constraints": {"effort": {}}})
    with pytest.raises(SafetyConfigError, match=r"gone.yaml: included file not found: .*nowhere.yaml"):
        load_safety_config(gone)
    bad = write(tmp_path, "bad.yaml", {"include": ["a.yaml"], "robot": "panda", "constraints": {"effort": {}}})
    with pytest.raises(SafetyConfigError, match="bad.yaml: 'include' must be a file name"):
        load_safety_config(bad)
    lst = write(tmp_path, "lst.yaml", f"include: {safety_yaml_path('panda').resolve()}\nconstraints: [effort]\n")
    with pytest.raises(SafetyConfigError, match="lst.yaml: 'constraints' must be a mapping"):
        load_safety_config(lst)


# --------------------------------------------------------------------------------------------
# 7. speed and separation monitoring
# --------------------------------------------------------------------------------------------
SSM_LINKS = {"panda_hand": {"capsule": "mesh"}, "panda_link7": {"capsule": "mesh"}}


def test_allowed_speed_is_the_iso_separation_formula(panda):
    ssm = SpeedSeparation(panda, links=SSM_LINKS, human={"sphere": 0.15, "pos": [1.0, 0, 0.5]})
    assert ssm.offset == pytest.approx(1.6 * (0.02 + 0.1) + 0.1 + 0.02)
    d = np.array([0.0, 0.1, ssm.offset, ssm.offset + 1e-3, 0.5, 1.0, 2.0])
    v = ssm.allowed_speed(d)
    np.testing.assert_array_equal(v[d <= ssm.offset], 0.0)
    assert np.all(v[d > ssm.offset] > 0) and np.all(np.diff(v) >= 0)
    np.testing.assert_allclose(sep_distance(ssm, v[d > ssm.offset]), d[d > ssm.offset], rtol=1e-12)


def test_ssm_velocity_mode_limits_the_approach_speed(panda):
    q = panda.home
    J = panda.jacobian(q)
    u_nom = np.linalg.pinv(J) @ np.array([1.0, 0, 0, 0, 0, 0])  # tool point towards +x at 1 m/s
    hand = panda.fk(q, "panda_hand")[:3, 3]
    kin = Kinematics(panda)
    speeds, interventions, seen_zero = [], [], False
    for gap in (0.35, 0.45, 0.55, 0.6, 0.7, 0.8, 1.2, 2.5):
        ssm = SpeedSeparation(panda, links=SSM_LINKS, human={"sphere": 0.15, "pos": [hand[0] + gap, 0.0, hand[2]]})
        f = SafetyFilter(panda, [ssm], mode="velocity")
        assert f.row_names == ["ssm[panda_hand]", "ssm[panda_link7]"]
        out = f.step(q, np.zeros(panda.n), u_nom)
        assert out.status == "ok" and out.residual <= 1e-9
        d = distances(ssm.set, kin, q)
        allowed = ssm.allowed_speed(d)
        # speed of each link towards the human under u: −ḋ, by finite differences of d
        eps = 1e-6
        approach = -(distances(ssm.set, kin, q + eps * out.u) - distances(ssm.set, kin, q - eps * out.u)) / (2 * eps)
        assert np.all(approach <= allowed + 1e-6), (gap, d, approach, allowed)
        # the rows are exactly −∇d·u ≤ v_allowed(d)
        kin.update(q)
        G, _ = ssm.set.gradients(kin, ssm.set.compute())
        assert np.all(-G @ out.u <= allowed + 1e-9)
        np.testing.assert_allclose(sep_distance(ssm, allowed[d > ssm.offset]), d[d > ssm.offset], rtol=1e-12)
        if np.all(d <= ssm.offset):  # too close for any approach: the hand stops, it does not approach
            seen_zero = True
            assert approach.max() <= 1e-6 and -(G @ out.u)[0] == pytest.approx(0.0, abs=1e-9)
        speeds.append(approach[0])
        interventions.append(out.intervention)
    assert seen_zero
    assert np.all(np.diff(speeds) >= -1e-6), speeds  # farther: more speed allowed
    assert np.all(np.diff(interventions) <= 1e-9), interventions
    assert interventions[0] > 1.0 and interventions[-1] < 1e-9  # far away: the nominal passes


def test_ssm_effort_mode_rows_and_finite_commands(panda):
    q = panda.home
    J = panda.jacobian(q)
    Jp = np.linalg.pinv(J)
    v = Jp @ np.array([0.5, 0, 0, 0, 0, 0])  # already moving towards the human
    tau_nom = panda.rnea(q, v, Jp @ np.array([5.0, 0, 0, 0, 0, 0]))  # and speeding up
    hand = panda.fk(q, "panda_hand")[:3, 3]
    kin = Kinematics(panda)
    interventions = []
    for gap in (0.4, 0.6, 0.8, 2.5):
        ssm = SpeedSeparation(panda, links=SSM_LINKS, human={"sphere": 0.15, "pos": [hand[0] + gap, 0.0, hand[2]]})
        f = SafetyFilter(panda, [ssm], mode="effort")
        assert f.m == 2 and f.row_names == ["ssm[panda_hand]", "ssm[panda_link7]"]
        out = f.step(q, v, tau_nom)
        assert out.status == "ok" and np.all(np.isfinite(out.u)) and np.all(np.isfinite(f.h))
        # the barrier h = d − S_p(v_r) with v_r the measured approach speed
        kin.update(q, v)
        g = ssm.set.compute()
        G, drift = ssm.set.gradients(kin, g, drift=True)
        vr = np.maximum(-(G @ v), 0.0)
        np.testing.assert_allclose(f.h, g.d - sep_distance(ssm, vr), atol=1e-12)
        # the filtered torque never accelerates the hand towards the human more than the nominal
        M, nle = panda.mass_matrix(q), panda.nonlinear_effects(q, v)

        def approach_acc(tau):  # −d̈ of the hand pair under torque tau
            return -(G[0] @ np.linalg.solve(M, tau - nle) + drift[0])

        assert approach_acc(out.u) <= approach_acc(tau_nom) + 1e-9
        interventions.append(out.intervention)
    assert interventions[0] > 1.0 and interventions[-1] < 1e-9
    assert np.all(np.diff(interventions) <= 1e-9), interventions


# --------------------------------------------------------------------------------------------
# 8. collision rows in velocity mode
# --------------------------------------------------------------------------------------------
def test_collision_rows_stop_the_hand_above_the_table(panda, cfg):
    q = ik_position(panda, panda.home, np.array([0.45, 0.0, 0.07]))
    np.testing.assert_allclose(panda.fk(q)[:3, 3], [0.45, 0.0, 0.07], atol=1e-8)
    col = CollisionDistance(panda, **cfg.constraints["collision"])
    dt = 0.002
    f = SafetyFilter(panda, [col], mode="velocity", dt=dt)
    J = panda.jacobian(q)
    u_nom = np.linalg.pinv(J) @ np.array([0, 0, -0.5, 0, 0, 0])  # straight down at 0.5 m/s
    out = f.step(q, np.zeros(panda.n), u_nom)
    assert out.status == "ok" and out.residual <= 1e-9
    kin = Kinematics(panda)
    kin.update(q)
    g = col.set.compute()
    G, _ = col.set.gradients(kin, g)
    h = g.d - col.d_min
    assert np.all(h > 0) and h.min() < 0.05
    bound = np.minimum(min(col.alpha, 1.0 / dt) * h, np.sqrt(2.0 * col.a_brake * h))
    assert np.all(G @ out.u + bound >= -1e-9), dict(zip(col.set.pairs, G @ out.u + bound))
    assert np.any(G @ u_nom + bound < -1e-3)  # the nominal breaks a row
    assert out.intervention > 0.05
    # some table row binds; the hand still goes down, more slowly than asked
    binding = out.binding
    assert any(name.endswith("|table]") for name in binding), binding
    vz = (J @ out.u)[2]
    assert -0.5 < vz < 0
    # and the rows' ∇d·u is the true rate of the distance (finite differences along u)
    eps = 1e-6
    rate = (distances(col.set, kin, q + eps * out.u) - distances(col.set, kin, q - eps * out.u)) / (2 * eps)
    assert np.all(rate + bound >= -1e-6)


def test_compiled_kernels_match_the_numpy_reference(panda, coll):
    """The filter's hot path (numba kernels, gradients_into) computes the same gradients and
    drifts as the vectorized numpy reference (gradients) on random states, env and self pairs."""
    from robot_ctrl.safety.geometry import Kinematics

    kin = Kinematics(panda)
    dset = coll.set
    rng = np.random.default_rng(21)
    for _ in range(20):
        q = random_q(panda, rng)
        v = rng.uniform(-1.0, 1.0, panda.n) * np.minimum(panda.v_max, 2.0)
        kin.update(q, v)
        g = dset.compute()
        G_ref, a_ref = dset.gradients(kin, g, drift=True)
        G, a = dset.gradients_into(kin, g, drift=True)
        np.testing.assert_allclose(G, G_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a, a_ref, rtol=1e-10, atol=1e-10)
        for point, joint in ((np.array([0.1, -0.2, 0.5]), 7), (np.array([0.0, 0.3, 0.2]), 4)):
            J = kin.point_jacobian(point, joint)
            np.testing.assert_allclose(kin.point_drift(point, joint),
                                       kin.normal_drifts(np.eye(3), np.tile(point, (3, 1)), np.full(3, joint)),
                                       rtol=1e-12, atol=1e-12)
            assert J.shape == (3, panda.n)


def test_include_with_merge_edits_the_included_constraint(panda):
    """`merge: true` edits the included constraint key by key; null removes a world object."""
    base = load_safety_config("panda")
    cfg = load_safety_config("panda_tasks")
    world = cfg.constraints["collision"]["world"]
    assert set(world) == {"table"} and world["table"]["clearance"] == 0.003
    assert cfg.constraints["collision"]["links"] == base.constraints["collision"]["links"]
    assert cfg.constraints["workspace"]["upper"] == base.constraints["workspace"]["upper"]
    assert cfg.constraints["workspace"]["lower"][2] == 0.01 and "merge" not in cfg.constraints["workspace"]
    f = build_filter(panda, cfg, mode="effort")
    assert f.collision_pairs < build_filter(panda, base, mode="effort").collision_pairs
