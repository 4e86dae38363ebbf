"""Collision geometry for the safety filter: link shapes, environment objects, and the
distances, witness points and point Jacobians between them.

Distances and witness points come from coal through pinocchio's GeometryModel (one C++ call
for all pairs). Robot links are capsules or spheres (given in the config, or a capsule fitted
to the link's collision mesh), or the convex hull of the collision mesh itself. Environment
objects are boxes, spheres, capsules, cylinders or half-spaces fixed in the world; their pose
can be updated at run time (an obstacle tracked from a pose topic).

Kinematics is shared: `Kinematics` runs pinocchio's joint Jacobians once per filter step and
gives, for any point attached to a joint, its world Jacobian J_p (3 x n) and, with velocities,
its drift J̇_p q̇, in the robot's controlled-joint order.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import coal
import numpy as np
import pinocchio as pin

from robot_ctrl.model.robot import RobotModel
from robot_ctrl.paths import resolve_uri


class GeometryConfigError(ValueError):
    """A shape, link or pair in the safety config is invalid."""


_LEVI_CIVITA = np.zeros((3, 3, 3))
_LEVI_CIVITA[0, 1, 2] = _LEVI_CIVITA[1, 2, 0] = _LEVI_CIVITA[2, 0, 1] = 1.0
_LEVI_CIVITA[0, 2, 1] = _LEVI_CIVITA[2, 1, 0] = _LEVI_CIVITA[1, 0, 2] = -1.0
_LC = np.ascontiguousarray(_LEVI_CIVITA.reshape(3, 9).T)  # (9, 3)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (P, 3) arrays: one outer product and one matmul with the
    Levi-Civita tensor (np.cross is ~3x slower on small arrays)."""
    return (a[:, :, None] * b[:, None, :]).reshape(-1, 9) @ _LC


_EYE3 = np.eye(3)


def _skew(p: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -p[2], p[1]], [p[2], 0.0, -p[0]], [-p[1], p[0], 0.0]])


# --------------------------------------------------------------------------------------------
# shared kinematics
# --------------------------------------------------------------------------------------------
class Kinematics:
    """Joint Jacobians of one state, computed once and shared by every constraint of a step."""

    def __init__(self, robot: RobotModel):
        self.robot = robot
        self.model, self.data = robot.model, robot.data
        nj = self.model.njoints
        # mask[j, k]: column k (controlled order) moves joint j's body
        self.mask = np.zeros((nj, robot.n))
        for j in range(1, nj):
            for k in self.model.supports[j]:
                if k > 0:
                    self.mask[j, self.model.joints[k].idx_v] = 1.0
        if not robot._identity:
            self.mask = self.mask[:, robot._perm]
        self.have_dJ = False

    def update(self, q: np.ndarray, v: np.ndarray | None = None) -> None:
        r = self.robot
        qp = r._to_pin(q)
        if v is None:
            pin.computeJointJacobians(self.model, self.data, qp)
            self.have_dJ = False
        else:
            # also computes the placements and the world Jacobian data.J
            pin.computeJointJacobiansTimeVariation(self.model, self.data, qp, r._to_pin(v))
            self.have_dJ = True
        J = self.data.J
        self.J = np.ascontiguousarray(J if r._identity else J[:, r._perm])
        if self.have_dJ:
            dJ = self.data.dJ
            self.dJ = np.ascontiguousarray(dJ if r._identity else dJ[:, r._perm])
            self.v = np.asarray(v, dtype=float)

    def point_jacobian(self, point: np.ndarray, joint: int) -> np.ndarray:
        """(3, n) world Jacobian of a point (pinocchio world frame) attached to `joint`."""
        Jv, Jw = self.J[:3], self.J[3:]
        # v_p = v_O + ω × p = Jv q̇ − p × (Jω q̇)
        return (Jv - _skew(point) @ Jw) * self.mask[joint]

    def point_drift(self, point: np.ndarray, joint: int) -> np.ndarray:
        """(3,) J̇_p q̇ of a point attached to `joint`: its acceleration at q̈ = 0."""
        from robot_ctrl.safety import kernels

        out = np.empty(3)
        kernels.normal_drifts(_EYE3, np.tile(point, (3, 1)), np.full(3, joint, dtype=np.int64),
                              np.ascontiguousarray(self.J), np.ascontiguousarray(self.dJ), self.mask, self.v, out)
        return out

    def normal_gradients(self, normals: np.ndarray, points: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """(P, n): rows nᵢᵀ J_pᵢ for points pᵢ (P, 3) attached to joints (P,).

        nᵀ(Jv − [p]× Jω) = nᵀJv − (n × p)ᵀ Jω, so no per-point 3 x n Jacobian is formed.
        """
        G = normals @ self.J[:3] - _cross(normals, points) @ self.J[3:]
        G *= self.mask[joints]
        return G

    def normal_drifts(self, normals: np.ndarray, points: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """(P,): nᵢᵀ J̇_pᵢ q̇, the point accelerations along nᵢ at q̈ = 0.

        a_p = J̇v q̇ − p × (J̇ω q̇) − ṗ × ω, with ṗ = Jv q̇ − p × ω, over the joints that move p.
        """
        mv = self.mask[joints] * self.v  # (P, n)
        J, dJ = self.J, self.dJ
        omega = mv @ J[3:].T
        pdot = mv @ J[:3].T - _cross(points, omega)
        acc = mv @ dJ[:3].T - _cross(points, mv @ dJ[3:].T) - _cross(pdot, omega)
        return np.einsum("pi,pi->p", normals, acc)

# --------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------
def fit_capsule(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Smallest-radius capsule along the principal axis that contains every vertex: (a, b, r).

    The axis is the first principal component; the radius is the largest distance of a vertex
    from the axis line; the end points are the tightest ones that still cover every vertex.
    """
    V = np.asarray(vertices, dtype=float)
    if V.ndim != 2 or V.shape[1] != 3 or len(V) < 2:
        raise GeometryConfigError("fit_capsule needs an (N, 3) array of vertices, N >= 2")
    c = V.mean(axis=0)
    _, _, vt = np.linalg.svd(V - c, full_matrices=False)
    axis = vt[0]
    t = (V - c) @ axis
    rho = np.linalg.norm((V - c) - np.outer(t, axis), axis=1)
    r = float(rho.max())
    reach = np.sqrt(np.maximum(r * r - rho * rho, 0.0))
    t1 = float(np.max(t - reach))
    t0 = float(np.min(t + reach))
    if t0 > t1:  # a sphere covers it
        t0 = t1 = 0.5 * (t0 + t1)
    return c + t0 * axis, c + t1 * axis, r


def link_collision_vertices(robot: RobotModel, link: str) -> np.ndarray:
    """Vertices (N, 3) of the link's URDF collision meshes, in the link frame."""
    root = ET.fromstring(robot.urdf_xml)
    el = next((lk for lk in root.findall("link") if lk.get("name") == link), None)
    if el is None:
        raise GeometryConfigError(f"link '{link}' is not in the URDF of {robot.name}")
    out = []
    for col in el.findall("collision"):
        mesh = col.find("geometry/mesh")
        if mesh is None:
            continue
        scale = np.array([float(s) for s in mesh.get("scale", "1 1 1").split()])
        path = resolve_uri(mesh.get("filename"), base=robot.cfg.urdf.parent)
        V = np.asarray(coal.MeshLoader().load(str(path), scale).vertices(), dtype=float)
        origin = col.find("origin")
        if origin is not None:
            xyz = np.array([float(s) for s in origin.get("xyz", "0 0 0").split()])
            rpy = np.array([float(s) for s in origin.get("rpy", "0 0 0").split()])
            V = V @ pin.rpy.rpyToMatrix(*rpy).T + xyz
        out.append(V)
    if not out:
        raise GeometryConfigError(f"link '{link}' of {robot.name} has no collision mesh")
    return np.vstack(out)


def _vec(spec, key, n, where):
    try:
        x = np.asarray(spec[key], dtype=float)
    except KeyError:
        raise GeometryConfigError(f"{where}: missing '{key}'") from None
    except (TypeError, ValueError):
        raise GeometryConfigError(f"{where}: '{key}' must be {n} numbers") from None
    if x.shape != (n,) or not np.all(np.isfinite(x)):
        raise GeometryConfigError(f"{where}: '{key}' must be {n} finite numbers")
    return x


def _positive(spec, key, where):
    try:
        x = float(spec[key])
    except KeyError:
        raise GeometryConfigError(f"{where}: missing '{key}'") from None
    except (TypeError, ValueError):
        raise GeometryConfigError(f"{where}: '{key}' must be a number") from None
    if not np.isfinite(x) or x <= 0:
        raise GeometryConfigError(f"{where}: '{key}' must be positive")
    return x


def _segment_placement(a: np.ndarray, b: np.ndarray) -> tuple[pin.SE3, float]:
    """Placement whose z axis runs from a to b, at their middle; and the half length."""
    axis = b - a
    L = float(np.linalg.norm(axis))
    z = axis / L if L > 1e-9 else np.array([0.0, 0.0, 1.0])
    R = pin.Quaternion.FromTwoVectors(np.array([0.0, 0.0, 1.0]), z).matrix()
    return pin.SE3(R, 0.5 * (a + b)), 0.5 * L


def link_shape(robot: RobotModel, link: str, spec: dict) -> tuple[coal.CollisionGeometry, pin.SE3, str]:
    """(coal shape, placement in the link frame, description) from a link's config entry:

    capsule: mesh                       fitted to the link's collision mesh
    capsule: {a: [x,y,z], b: [x,y,z], radius: r}
    sphere: {center: [x,y,z], radius: r}
    mesh: convex                        convex hull of the collision mesh
    """
    where = f"safety collision link '{link}'"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise GeometryConfigError(f"{where}: give exactly one of capsule, sphere, mesh")
    (kind, val), = spec.items()
    if kind == "capsule":
        if val == "mesh":
            a, b, r = fit_capsule(link_collision_vertices(robot, link))
        elif isinstance(val, dict):
            a, b, r = _vec(val, "a", 3, where), _vec(val, "b", 3, where), _positive(val, "radius", where)
        else:
            raise GeometryConfigError(f"{where}: capsule must be 'mesh' or {{a, b, radius}}")
        M, half = _segment_placement(a, b)
        return coal.Capsule(r, 2.0 * half), M, f"capsule r={r:.3f} L={2 * half:.3f}"
    if kind == "sphere":
        if not isinstance(val, dict):
            raise GeometryConfigError(f"{where}: sphere must be {{center, radius}}")
        c, r = _vec(val, "center", 3, where), _positive(val, "radius", where)
        return coal.Sphere(r), pin.SE3(np.eye(3), c), f"sphere r={r:.3f}"
    if kind == "mesh":
        if val != "convex":
            raise GeometryConfigError(f"{where}: mesh must be 'convex'")
        V = link_collision_vertices(robot, link)
        hull = coal.BVHModelOBBRSS()
        hull.beginModel(0, len(V))
        hull.addVertices(V)
        hull.endModel()
        hull.buildConvexHull(True, "Qt")
        return hull.convex, pin.SE3.Identity(), f"convex hull of {len(V)} vertices"
    raise GeometryConfigError(f"{where}: unknown shape '{kind}' (capsule, sphere, mesh)")


def world_shape(name: str, spec: dict) -> tuple[coal.CollisionGeometry, pin.SE3]:
    """(coal shape, world placement) of an environment object:

    {box: [sx, sy, sz]} (full sizes) | {sphere: r} | {capsule: [r, length]} |
    {cylinder: [r, length]} | {halfspace: [nx, ny, nz, offset]}  (n·x >= offset is outside),
    with pos: [x, y, z] and rpy: [r, p, y] (optional).
    """
    where = f"safety environment object '{name}'"
    if not isinstance(spec, dict):
        raise GeometryConfigError(f"{where}: must be a mapping")
    kinds = [k for k in ("box", "sphere", "capsule", "cylinder", "halfspace") if k in spec]
    if len(kinds) != 1:
        raise GeometryConfigError(f"{where}: give exactly one of box, sphere, capsule, cylinder, halfspace")
    kind = kinds[0]
    pos = _vec(spec, "pos", 3, where) if "pos" in spec else np.zeros(3)
    rpy = _vec(spec, "rpy", 3, where) if "rpy" in spec else np.zeros(3)
    M = pin.SE3(pin.rpy.rpyToMatrix(*rpy), pos)
    val = spec[kind]
    if kind == "box":
        s = _vec(spec, "box", 3, where)
        if np.any(s <= 0):
            raise GeometryConfigError(f"{where}: box sizes must be positive")
        return coal.Box(*s), M
    if kind == "sphere":
        return coal.Sphere(_positive(spec, "sphere", where)), M
    if kind in ("capsule", "cylinder"):
        r, L = _vec(spec, kind, 2, where)
        if r <= 0 or L < 0:
            raise GeometryConfigError(f"{where}: {kind} needs radius > 0 and length >= 0")
        return (coal.Capsule(r, L) if kind == "capsule" else coal.Cylinder(r, L)), M
    hs = _vec(spec, "halfspace", 4, where)
    if np.linalg.norm(hs[:3]) < 1e-9:
        raise GeometryConfigError(f"{where}: halfspace normal must be non-zero")
    return coal.Halfspace(hs[:3] / np.linalg.norm(hs[:3]), float(hs[3])), M


# --------------------------------------------------------------------------------------------
# pairs and distances
# --------------------------------------------------------------------------------------------
@dataclass
class PairGeometry:
    """Per-pair results of one distance query, robot body first (arrays of length P)."""

    d: np.ndarray  # signed distance (negative: penetration depth)
    normal: np.ndarray  # (P, 3) unit normal from the robot body towards the other body
    p1: np.ndarray  # (P, 3) witness point on the robot body (world)
    p2: np.ndarray  # (P, 3) witness point on the other body (world)


class DistanceSet:
    """A pinocchio GeometryModel holding robot link shapes and world objects, with the pairs
    to check, and vectorized distance gradients  ∂d/∂q  from the witness-point Jacobians.

    links: {link_name: shape spec}; world: {name: object spec};
    pairs: [(link, other)] where other is a link or a world object.
    """

    def __init__(self, robot: RobotModel, links: dict, world: dict, pairs: list):
        self.robot = robot
        model = robot.model
        self.gm = pin.GeometryModel()
        self.gid: dict[str, int] = {}
        self.joint_of: dict[str, int] = {}
        self.describe: dict[str, str] = {}
        self._capsule_ends: dict[str, tuple] = {}
        for link, spec in links.items():
            # "frame#tag" names a second shape on the same frame (e.g. a tight convex hull for
            # the pairs where a capsule is too coarse)
            frame_name = link.split("#", 1)[0]
            if not model.existFrame(frame_name):
                raise GeometryConfigError(f"safety collision link '{link}' is not a frame of {robot.name}")
            fid = model.getFrameId(frame_name)
            frame = model.frames[fid]
            shape, M, desc = link_shape(robot, frame_name, spec)
            go = pin.GeometryObject(link, frame.parentJoint, fid, frame.placement * M, shape)
            self.gid[link] = self.gm.addGeometryObject(go)
            self.joint_of[link] = frame.parentJoint
            self.describe[link] = desc
            if isinstance(shape, coal.Capsule):
                self._capsule_ends[link] = (frame.parentJoint, fid, frame.placement * M,
                                            float(shape.halfLength), float(shape.radius))
        base = pin.SE3(np.eye(3), -robot.base_pos)  # world objects are given in the world frame
        for name, spec in world.items():
            if name in self.gid:
                raise GeometryConfigError(f"safety environment object '{name}' has the name of a link")
            shape, M = world_shape(name, spec)
            go = pin.GeometryObject(name, 0, 0, base * M, shape)
            self.gid[name] = self.gm.addGeometryObject(go)
            self.joint_of[name] = 0
        self.world = set(world)
        self.pairs: list[tuple[str, str]] = []
        self.margins: list[float] = []  # per pair: its own clearance, or nan (the default)
        for pair in pairs:
            if not (isinstance(pair, (list, tuple)) and len(pair) in (2, 3)):
                raise GeometryConfigError(f"safety collision pair {pair!r} must be [link, other] or "
                                          "[link, other, clearance]")
            a, b = pair[0], pair[1]
            margin = float("nan")
            if len(pair) == 3:
                try:
                    margin = float(pair[2])
                except (TypeError, ValueError):
                    margin = -1.0
                if not np.isfinite(margin) or margin < 0:
                    raise GeometryConfigError(f"safety collision pair {pair!r}: clearance must be a number >= 0")
            for x in (a, b):
                if x not in self.gid:
                    raise GeometryConfigError(f"safety collision pair {pair!r}: '{x}' has no shape")
            if a in self.world:
                raise GeometryConfigError(f"safety collision pair {pair!r}: the first must be a link")
            if self.joint_of[a] == self.joint_of[b]:
                raise GeometryConfigError(f"safety collision pair {pair!r}: both on the same body")
            # pinocchio keeps one of [a, b] and [b, a]: a repeat would misalign the results
            if any({a, b} == {x, y} for x, y in self.pairs):
                raise GeometryConfigError(f"safety collision pair {pair!r} is listed twice")
            if a in self._capsule_ends and isinstance(self.gm.geometryObjects[self.gid[b]].geometry, coal.Halfspace):
                # A capsule's distance to a plane is the smaller of its two end spheres', a
                # minimum whose gradient jumps when the capsule tilts through parallel. Two
                # smooth rows, one per end sphere, carry the same constraint without the jump.
                for end in ("a", "b"):
                    name = self._end_sphere(a, end)
                    self.gm.addCollisionPair(pin.CollisionPair(self.gid[name], self.gid[b]))
                    self.pairs.append((name, b))
                    self.margins.append(margin)
                continue
            self.gm.addCollisionPair(pin.CollisionPair(self.gid[a], self.gid[b]))
            self.pairs.append((a, b))
            self.margins.append(margin)
        self.gdata = self.gm.createData()
        # coal orders each pair by geometry id; flip results where our "robot first" differs
        cps = self.gm.collisionPairs
        self.flip = np.array([cps[i].first != self.gid[a] for i, (a, _) in enumerate(self.pairs)])
        self.ja = np.array([self.joint_of[a] for a, _ in self.pairs], dtype=int)
        self.jb = np.array([self.joint_of[b] for _, b in self.pairs], dtype=int)
        self.self_pairs = self.jb > 0
        self._any_self = bool(self.self_pairs.any())
        self._joints_all = np.concatenate((self.ja, self.jb[self.self_pairs]))
        # swept-sphere radius (capsule, sphere; else 0) of each pair's robot side and other side
        rad = [float(go.geometry.radius) if isinstance(go.geometry, (coal.Capsule, coal.Sphere)) else 0.0
               for go in self.gm.geometryObjects]
        self._ra = np.array([rad[self.gid[a]] for a, _ in self.pairs]).reshape(-1, 1)
        self._rb = np.array([rad[self.gid[b]] for _, b in self.pairs]).reshape(-1, 1)
        # buffers of the compiled path (gradients_into)
        n, P = robot.n, len(self.pairs)
        self._G = np.zeros((P, n))
        self._acc = np.zeros(P)
        self._core1 = np.zeros((P, 3))
        self._core2 = np.zeros((P, 3))
        self._ra_flat = np.ascontiguousarray(self._ra[:, 0]) if P else np.zeros(0)
        self._rb_flat = np.ascontiguousarray(self._rb[:, 0]) if P else np.zeros(0)
        self._ja64 = self.ja.astype(np.int64)
        self._jb64 = self.jb.astype(np.int64)
        P = len(self.pairs)
        self._d = np.zeros(P)
        # a Python list of the result objects (references into gdata): iterating the wrapped
        # std::vector each step costs more than the distance queries themselves
        self._results = list(self.gdata.distanceResults)
        self._any_flip = bool(self.flip.any())

    def _end_sphere(self, link: str, end: str) -> str:
        """The geometry name of a capsule link's end sphere ('a': −z end, 'b': +z end), created once."""
        name = f"{link}@{end}"
        if name not in self.gid:
            joint, fid, M, half, r = self._capsule_ends[link]
            offset = pin.SE3(np.eye(3), np.array([0.0, 0.0, -half if end == "a" else half]))
            go = pin.GeometryObject(name, joint, fid, M * offset, coal.Sphere(r))
            self.gid[name] = self.gm.addGeometryObject(go)
            self.joint_of[name] = joint
        return name

    @property
    def size(self) -> int:
        return len(self.pairs)

    def set_world_pose(self, name: str, pos, quat_xyzw=None) -> None:
        """Move a world object (e.g. an obstacle tracked from a pose topic); world frame."""
        if name not in self.world:
            raise KeyError(f"no world object '{name}' (have: {', '.join(sorted(self.world))})")
        pos = np.asarray(pos, dtype=float)
        R = np.eye(3) if quat_xyzw is None else pin.Quaternion(np.asarray(quat_xyzw, float)).normalized().matrix()
        if pos.shape != (3,) or not np.all(np.isfinite(pos)) or not np.all(np.isfinite(R)):
            raise ValueError(f"pose of '{name}' must be finite")
        self.gm.geometryObjects[self.gid[name]].placement = pin.SE3(R, pos - self.robot.base_pos)

    def world_position(self, name: str) -> np.ndarray:
        return self.gm.geometryObjects[self.gid[name]].placement.translation + self.robot.base_pos

    def compute(self) -> PairGeometry:
        """Distances after `Kinematics.update` (uses the placements in robot.data)."""
        pin.updateGeometryPlacements(self.robot.model, self.robot.data, self.gm, self.gdata)
        pin.computeDistances(self.gm, self.gdata)
        R = self._results
        # coal's witness points satisfy p2 = p1 + d·n exactly (penetration included), so only
        # p1 and n are read: the Python reads, not the distance queries, dominate this step
        d = self._d
        d[:] = [r.min_distance for r in R]
        n = np.array([r.normal for r in R]).reshape(-1, 3)
        p1 = np.array([r.getNearestPoint1() for r in R]).reshape(-1, 3)
        p2 = p1 + d[:, None] * n
        if self._any_flip:  # robot body first: swap the points and turn the normal round
            f = self.flip
            p1[f], p2[f] = p2[f].copy(), p1[f].copy()
            n[f] *= -1.0
        return PairGeometry(d, n, p1, p2)

    def gradients(self, kin: Kinematics, g: PairGeometry, drift: bool = False):
        """∂d/∂q (P, n) and, with drift, d̈ at q̈ = 0 (P,) (the normal-rate term, ≥ 0 for
        convex shapes under translation, is left out: conservative).

        d grows when the bodies separate along the normal: ḋ = nᵀ(v_p2 − v_p1). The robot-side
        points of all pairs and the other-side points of self pairs go through one batched call.
        """
        P, sp = self.size, self.self_pairs
        # Witness points moved in by the capsule/sphere radius onto the shapes' cores: a core
        # point moves with its body, while the witness slides over the rounded surface as the
        # body turns, so the witness's own drift would add r·|ω × n|² (not conservative). The
        # gradient is the same at both points (n × (p − r n) = n × p).
        p1 = g.p1 - self._ra * g.normal
        if self._any_self:
            normals = np.concatenate((g.normal, g.normal[sp]))
            points = np.concatenate((p1, g.p2[sp] + self._rb[sp] * g.normal[sp]))
        else:
            normals, points = g.normal, p1
        Gall = kin.normal_gradients(normals, points, self._joints_all)
        G = -Gall[:P]
        if self._any_self:
            G[sp] += Gall[P:]
        if not drift:
            return G, None
        aall = kin.normal_drifts(normals, points, self._joints_all)
        acc = -aall[:P]
        if self._any_self:
            acc[sp] += aall[P:]
        return G, acc

    def gradients_into(self, kin: Kinematics, g: PairGeometry, drift: bool = False):
        """`gradients` through the compiled kernels, into buffers reused every step (the
        numpy `gradients` above is the reference the tests compare against)."""
        from robot_ctrl.safety import kernels

        J = kin.J
        kernels.pair_gradients(g.normal, g.p1, g.p2, self._ra_flat, self._rb_flat, self._ja64, self._jb64,
                               self.self_pairs, J, kin.mask, self._G, self._core1, self._core2)
        if not drift:
            return self._G, None
        kernels.pair_drifts(g.normal, self._core1, self._core2, self._ja64, self._jb64, self.self_pairs,
                            J, kin.dJ, kin.mask, kin.v, self._acc)
        return self._G, self._acc
