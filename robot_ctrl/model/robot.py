"""Robot model on pinocchio: joints, limits, kinematics and rigid-body dynamics.

All arrays are in the order of `RobotModel.joint_names` (the YAML's controlled_joints),
whatever order the URDF tree has. Joints of the URDF that are not controlled are locked
(turned into fixed joints at zero) in the description that both pinocchio and MuJoCo load,
so the two always see the same mechanism.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pinocchio as pin

from robot_ctrl.model.config import RobotConfig, RobotConfigError, load_robot_config
from robot_ctrl.paths import resolve_uri

SUPPORTED_JOINT_TYPES = ("revolute", "prismatic")


def process_urdf(cfg: RobotConfig) -> str:
    """URDF text with the uncontrolled movable joints locked; validates the controlled joints."""
    try:
        root = ET.parse(cfg.urdf).getroot()
    except ET.ParseError as exc:
        raise RobotConfigError(f"{cfg.urdf}: invalid URDF XML: {exc}") from None
    joints = {j.get("name"): j for j in root.findall("joint")}
    missing = [j for j in cfg.controlled_joints if j not in joints]
    if missing:
        raise RobotConfigError(
            f"{cfg.source}: controlled joints not in {cfg.urdf}: {', '.join(missing)}"
        )
    for name, joint in joints.items():
        jtype = joint.get("type")
        if name in cfg.controlled_joints:
            if jtype not in SUPPORTED_JOINT_TYPES:
                raise RobotConfigError(
                    f"{cfg.source}: joint '{name}' has type '{jtype}'; controlled joints must be "
                    f"{' or '.join(SUPPORTED_JOINT_TYPES)}"
                )
            for mimic in joint.findall("mimic"):  # controlled joints are driven independently
                joint.remove(mimic)
        elif jtype != "fixed":
            joint.set("type", "fixed")
            for tag in ("axis", "limit", "mimic", "dynamics", "calibration", "safety_controller"):
                for el in joint.findall(tag):
                    joint.remove(el)
    return ET.tostring(root, encoding="unicode")


def mujoco_urdf(urdf_xml: str, urdf_path: Path) -> str:
    """URDF text MuJoCo can compile: meshes resolved to absolute paths, visuals dropped.

    MuJoCo cannot read `package://` URIs nor COLLADA (.dae) visual meshes; collision meshes
    (STL) are kept and rendered.
    """
    root = ET.fromstring(urdf_xml)
    for link in root.findall("link"):
        for visual in link.findall("visual"):
            link.remove(visual)
        for mesh in link.iter("mesh"):
            fn = mesh.get("filename", "")
            mesh.set("filename", str(resolve_uri(fn, base=urdf_path.parent)))
    return ET.tostring(root, encoding="unicode")


class RobotModel:
    """Kinematics and dynamics of the controlled joints of one robot."""

    def __init__(self, cfg: RobotConfig):
        self.cfg = cfg
        self.name = cfg.name
        self.urdf_xml = process_urdf(cfg)
        self.model = pin.buildModelFromXML(self.urdf_xml)
        self.data = self.model.createData()
        self.joint_names = list(cfg.controlled_joints)
        self.n = len(self.joint_names)
        if self.model.nq != self.n or self.model.nv != self.n:
            raise RobotConfigError(
                f"{cfg.source}: pinocchio model has nq={self.model.nq}, nv={self.model.nv}; "
                f"expected {self.n} one-dof joints"
            )
        # perm[i] = pinocchio index of controlled joint i
        self._perm = np.array(
            [self.model.joints[self.model.getJointId(j)].idx_q for j in self.joint_names], dtype=int
        )
        self._identity = bool(np.all(self._perm == np.arange(self.n)))
        self._q = np.zeros(self.n)
        self._v = np.zeros(self.n)
        self._a = np.zeros(self.n)

        lower = self._to_ctrl(self.model.lowerPositionLimit.copy())
        upper = self._to_ctrl(self.model.upperPositionLimit.copy())
        vel = self._to_ctrl(self.model.velocityLimit.copy())
        eff = self._to_ctrl(self.model.effortLimit.copy())
        vel[vel <= 0] = np.inf
        eff[eff <= 0] = np.inf
        for i, jn in enumerate(self.joint_names):
            over = cfg.limits.get(jn, {})
            lower[i] = over.get("lower", lower[i])
            upper[i] = over.get("upper", upper[i])
            vel[i] = over.get("velocity", vel[i])
            eff[i] = over.get("effort", eff[i])
        if np.any(lower > upper):
            bad = [self.joint_names[i] for i in np.flatnonzero(lower > upper)]
            raise RobotConfigError(f"{cfg.source}: lower limit above upper limit for {', '.join(bad)}")
        self.q_min, self.q_max, self.v_max, self.tau_max = lower, upper, vel, eff
        self.home = np.asarray(cfg.home, dtype=float)
        if np.any(self.home < self.q_min - 1e-9) or np.any(self.home > self.q_max + 1e-9):
            raise RobotConfigError(f"{cfg.source}: home configuration is outside the joint limits")
        self.base_pos = np.asarray(cfg.base_pos, dtype=float)
        self.ee_frame = cfg.ee_frame
        self.ee_frame_id = self.frame_id(cfg.ee_frame)
        # reflected rotor inertia (gearing), in both pinocchio (crba/rnea/aba) and MuJoCo
        self.armature = np.array([cfg.armature.get(j, 0.0) for j in self.joint_names])
        for j, val in cfg.armature.items():
            self.model.armature[self.model.joints[self.model.getJointId(j)].idx_v] = val
        self.kp = np.asarray(cfg.kp if cfg.kp is not None else [400.0] * self.n)
        self.kd = np.asarray(cfg.kd if cfg.kd is not None else [2.0 * np.sqrt(k) for k in self.kp])

    @classmethod
    def load(cls, name_or_path: str) -> "RobotModel":
        """Load `config/robots/<name>.yaml` (or a YAML path)."""
        return cls(load_robot_config(name_or_path))

    # -- ordering --------------------------------------------------------------------------
    def _to_pin(self, x: np.ndarray) -> np.ndarray:
        if self._identity:
            return np.asarray(x, dtype=float)
        out = np.empty(self.n)
        out[self._perm] = x
        return out

    def _to_ctrl(self, x: np.ndarray) -> np.ndarray:
        return x if self._identity else x[self._perm]

    def frame_id(self, name: str) -> int:
        if not self.model.existFrame(name):
            raise RobotConfigError(f"{self.cfg.source}: frame '{name}' not in the URDF")
        return self.model.getFrameId(name)

    # -- kinematics ------------------------------------------------------------------------
    def fk(self, q: np.ndarray, frame: str | None = None) -> np.ndarray:
        """4x4 pose of `frame` (default: the end effector) in the world frame."""
        fid = self.ee_frame_id if frame is None else self.frame_id(frame)
        pin.framesForwardKinematics(self.model, self.data, self._to_pin(q))
        T = self.data.oMf[fid].homogeneous.copy()
        T[:3, 3] += self.base_pos
        return T

    def jacobian(self, q: np.ndarray, frame: str | None = None) -> np.ndarray:
        """6xn frame Jacobian [linear; angular] in the world-aligned frame at the frame origin."""
        fid = self.ee_frame_id if frame is None else self.frame_id(frame)
        J = pin.computeFrameJacobian(
            self.model, self.data, self._to_pin(q), fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        )
        return J if self._identity else J[:, self._perm]

    # -- dynamics ------------------------------------------------------------------------
    def rnea(self, q: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Inverse dynamics tau = M(q) a + C(q, v) v + g(q)."""
        tau = pin.rnea(self.model, self.data, self._to_pin(q), self._to_pin(v), self._to_pin(a))
        return self._to_ctrl(tau).copy()

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        M = pin.crba(self.model, self.data, self._to_pin(q))
        M = np.triu(M) + np.triu(M, 1).T
        return M if self._identity else M[np.ix_(self._perm, self._perm)]

    def gravity(self, q: np.ndarray) -> np.ndarray:
        g = pin.computeGeneralizedGravity(self.model, self.data, self._to_pin(q))
        return self._to_ctrl(g).copy()

    def nonlinear_effects(self, q: np.ndarray, v: np.ndarray) -> np.ndarray:
        """h(q, v) = C(q, v) v + g(q)."""
        h = pin.nonLinearEffects(self.model, self.data, self._to_pin(q), self._to_pin(v))
        return self._to_ctrl(h).copy()

    def clip_position(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.q_min, self.q_max)
