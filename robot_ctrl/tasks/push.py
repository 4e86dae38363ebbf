"""Push: slide the 4 cm block across the table into a target circle (within 3 cm), the gripper
closed as a pusher."""
from __future__ import annotations

import numpy as np

from robot_ctrl.tasks.base import BlockTask

BLOCK_LOW, BLOCK_HIGH = np.array([0.45, 0.05]), np.array([0.60, 0.15])
TARGET_LOW, TARGET_HIGH = np.array([0.45, -0.15]), np.array([0.60, -0.05])
HALF = 0.02          # block half size (m)
CONTACT = HALF + 0.025  # hand centre behind the block centre when pushing
Z_PUSH, Z_TRAVEL = 0.02, 0.09
PUSH_STEP = 0.015   # hand advance per 0.1 s step while pushing (m): quasi-static, the block follows


class PushEnv(BlockTask):
    expert_noise = 0.01  # default scripted-expert noise for demonstrations (m)
    tolerance = 0.03
    block_region = (BLOCK_LOW, BLOCK_HIGH)
    target_region = (TARGET_LOW, TARGET_HIGH)

    def __init__(self, **kwargs):
        kwargs.setdefault("horizon", 120)
        super().__init__(**kwargs)

    def _success(self):
        return self.block_distance() < self.tolerance

    def _dense_reward(self):
        block = self.object_pose("block")[0][:2]
        u = self.target - block
        u /= max(np.linalg.norm(u), 1e-9)
        return -self.block_distance() - 0.5 * float(np.linalg.norm(self.ee()[0][:2] - (block - CONTACT * u)))

    def expert(self, noise: float = 0.0) -> np.ndarray:
        """Go above the point behind the block (on the far side from the target), descend, and
        push along the block-to-target line in short quasi-static steps (`PUSH_STEP`),
        correcting sideways drift; when the block slides off that line, slide back behind it
        at table height if the hand is still behind the block, otherwise lift and re-approach.
        (Measured, 1 cm noise, safety filter in the loop: 39/40 successes; lifting for every
        re-approach and 2 cm steps gave 86 %.) Decided from the current state only, so it
        recovers from its own noise. `noise`: std (m) of Gaussian noise on the commanded
        position."""
        hand = self.ee()[0]
        block = self.object_pose("block")[0][:2]
        d = self.target - block
        dist = float(np.linalg.norm(d))
        u = d / max(dist, 1e-9)
        perp = np.array([-u[1], u[0]])
        rel = hand[:2] - block
        along, lateral = float(rel @ u), abs(float(rel @ perp))
        behind = block - CONTACT * u
        if hand[2] < 0.045 and lateral < 0.015 and along < -HALF:
            p = [*(block - CONTACT * u + min(PUSH_STEP, dist) * u), Z_PUSH]  # push
        elif (np.linalg.norm(hand[:2] - behind) < 0.02                        # descend behind the block,
              or hand[2] < 0.045 and along < -(HALF + 0.012) and lateral < 0.05):  # or slide back there, low
            p = [*behind, Z_PUSH]
        elif hand[2] > 0.06:
            p = [*behind, Z_TRAVEL]                                          # travel above
        else:
            p = [*hand[:2], Z_TRAVEL]                                        # lift clear first
        p = self.toward(p)
        if noise > 0:
            p = p + self.np_random.normal(0.0, noise, 3)
        return self.action(p, -1.0)
