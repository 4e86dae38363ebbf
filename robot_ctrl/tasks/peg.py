"""Peg-in-hole: pick up the 2 cm square peg (8 cm long) and insert it at least 2 cm into a
hole whose opening is 1.5 mm wider than the peg (0.75 mm clearance a side), built from four
box walls (sim/scenes/peg.xml)."""
from __future__ import annotations

import mujoco
import numpy as np

from robot_ctrl.tasks.base import TaskEnv

PEG_LOW, PEG_HIGH = np.array([0.45, 0.05]), np.array([0.60, 0.20])
HOLE_LOW, HOLE_HIGH = np.array([0.45, -0.20]), np.array([0.60, -0.05])
PEG_HALF = 0.04       # half length
GRASP_UP = 0.02       # hand centre above the peg centre when grasping
HELD_WIDTH = 0.012
OPEN_WIDTH = 0.03
WALL_TOP = 0.04
DEPTH = 0.02          # insertion depth for success


class PegInHoleEnv(TaskEnv):
    scene = "peg"
    objects = ("peg",)
    goal_size = 2
    expert_noise = 0.004  # default scripted-expert noise for demonstrations (m)
    tolerance = 0.003

    def __init__(self, **kwargs):
        kwargs.setdefault("horizon", 150)
        super().__init__(**kwargs)
        self.hole = np.zeros(2)
        self._hole_body = self.sim.model.body("hole").id

    def _reset_task(self, rng):
        self.hole = rng.uniform(HOLE_LOW, HOLE_HIGH)
        self.sim.model.body_pos[self._hole_body, :2] = self.hole
        mujoco.mj_forward(self.sim.model, self.sim.data)
        self.set_object("peg", [*rng.uniform(PEG_LOW, PEG_HIGH), PEG_HALF])

    def goal(self):
        return self.hole.copy()

    def peg_bottom(self) -> np.ndarray:
        p, R = self.object_pose("peg")
        return p - PEG_HALF * R[:, 2]

    def holding(self) -> bool:
        hand, peg = self.ee()[0], self.object_pose("peg")[0]
        return bool(np.linalg.norm(hand - (peg + [0, 0, GRASP_UP])) < 0.02 and self.gripper_opening() < HELD_WIDTH)

    def _success(self):
        b = self.peg_bottom()
        return bool(b[2] < WALL_TOP - DEPTH and np.linalg.norm(b[:2] - self.hole) < self.tolerance)

    def _dense_reward(self):
        hand, peg = self.ee()[0], self.object_pose("peg")[0]
        b = self.peg_bottom()
        return (-float(np.linalg.norm(hand - peg - [0, 0, GRASP_UP])) - 2.0 * float(np.linalg.norm(b[:2] - self.hole))
                - float(max(b[2], 0.0)) + 0.5 * float(self.holding()))

    def expert(self, noise: float = 0.0) -> np.ndarray:
        """Grasp the peg near its top, carry it with its bottom 3 cm above the walls, align the
        peg (not the hand) over the hole, and lower it slowly, correcting sideways. Decided from
        the current state only. `noise`: std (m) of Gaussian noise on the commanded position,
        scaled down to a fifth during the insertion itself."""
        hand, peg = self.ee()[0], self.object_pose("peg")[0]
        grasp = peg + [0.0, 0.0, GRASP_UP]
        bottom = self.peg_bottom()
        err = self.hole - bottom[:2]
        step, scale = 0.04, 1.0
        if self.holding():
            inside = bottom[2] < WALL_TOP - 0.002 and np.linalg.norm(err) < 0.004
            if inside or (np.linalg.norm(err) < 0.0025 and bottom[2] < WALL_TOP + 0.04):
                p, g = [*(hand[:2] + err), hand[2] - bottom[2]], -1.0          # insert, slowly
                step, scale = 0.012, 0.2
            elif bottom[2] > WALL_TOP + 0.02:
                p, g = [*(hand[:2] + err), hand[2] + WALL_TOP + 0.03 - bottom[2]], -1.0   # carry, align
                if np.linalg.norm(err) < 0.02:
                    step = 0.01
            else:
                p, g = [*hand[:2], hand[2] + WALL_TOP + 0.03 - bottom[2]], -1.0  # lift
        else:
            near = np.linalg.norm(hand[:2] - grasp[:2])
            if near < 0.01 and hand[2] < grasp[2] + 0.008:
                p, g = grasp, -1.0                                              # close
            elif near < 0.02:
                p, g = grasp, 1.0                                               # descend, open
            elif hand[2] > grasp[2] + 0.06:
                p, g = [*grasp[:2], grasp[2] + 0.08], 1.0                       # travel above the peg
            else:
                p, g = [*hand[:2], grasp[2] + 0.08], 1.0                        # lift clear
        p = self.toward(p, step)
        if noise > 0:
            p = p + self.np_random.normal(0.0, noise * scale, 3)
        return self.action(p, g)
