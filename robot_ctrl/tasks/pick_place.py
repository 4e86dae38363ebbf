"""Pick-and-place: grasp the 4 cm block and put it down on the target circle (within 2 cm),
released and resting on the table."""
from __future__ import annotations

import numpy as np

from robot_ctrl.tasks.base import BlockTask

BLOCK_LOW, BLOCK_HIGH = np.array([0.45, 0.05]), np.array([0.60, 0.20])
TARGET_LOW, TARGET_HIGH = np.array([0.45, -0.20]), np.array([0.60, -0.05])
HALF = 0.02
Z_CARRY = 0.12
GRASP_DZ = 0.005      # hand centre above the block centre when grasping
HELD_WIDTH = 0.021    # finger position (m) below which fingers around the block hold it
OPEN_WIDTH = 0.03     # finger position above which the gripper counts as open


class PickPlaceEnv(BlockTask):
    expert_noise = 0.01  # default scripted-expert noise for demonstrations (m)
    tolerance = 0.02
    block_region = (BLOCK_LOW, BLOCK_HIGH)
    target_region = (TARGET_LOW, TARGET_HIGH)

    def __init__(self, **kwargs):
        kwargs.setdefault("horizon", 150)
        super().__init__(**kwargs)

    def holding(self) -> bool:
        hand, block = self.ee()[0], self.object_pose("block")[0]
        dz = hand[2] - block[2]  # a held block hangs up to a few cm below the hand centre
        return bool(np.linalg.norm(hand[:2] - block[:2]) < 0.02 and -0.01 < dz < 0.035
                    and self.gripper_opening() < HELD_WIDTH)

    def _success(self):
        block = self.object_pose("block")[0]
        return bool(self.block_distance() < self.tolerance and block[2] < HALF + 0.005
                    and self.gripper_opening() > OPEN_WIDTH)

    def _dense_reward(self):
        hand, block = self.ee()[0], self.object_pose("block")[0]
        reach = float(np.linalg.norm(hand - block))
        return -reach - 2.0 * self.block_distance() + 0.5 * float(self.holding())

    def expert(self, noise: float = 0.0) -> np.ndarray:
        """Above the block, open; descend; close; lift; carry above the target; lower; open.
        Each phase is chosen from the current state, so noise and slips are recovered from.
        `noise`: std (m) of Gaussian noise on the commanded position."""
        hand, block = self.ee()[0], self.object_pose("block")[0]
        near = np.linalg.norm(hand[:2] - block[:2])
        to_target = np.linalg.norm(block[:2] - self.target)
        if self.holding():
            off = np.linalg.norm(hand[:2] - self.target)
            if off < 0.015 or (off < 0.03 and block[2] < Z_CARRY - 0.03):  # (hysteresis: keep lowering)
                if block[2] < HALF + 0.004 and to_target < self.tolerance:
                    p, g = [*hand[:2], hand[2]], 1.0                                # down: release
                else:
                    p, g = [*self.target, HALF + GRASP_DZ], -1.0                    # lower onto the target
            elif block[2] > Z_CARRY - 0.03:
                p, g = [*self.target, Z_CARRY], -1.0                                # carry
            else:
                p, g = [*hand[:2], Z_CARRY], -1.0                                   # lift
        elif to_target < self.tolerance and block[2] < HALF + 0.005:
            p, g = [*hand[:2], Z_CARRY], 1.0                                        # placed: open, back off
        elif near < 0.012 and hand[2] < block[2] + GRASP_DZ + 0.008:
            p, g = [*block[:2], block[2] + GRASP_DZ], -1.0                          # close
        elif near < 0.02:
            p, g = [*block[:2], block[2] + GRASP_DZ], 1.0                           # descend, open
        elif hand[2] > block[2] + 0.06:
            p, g = [*block[:2], Z_CARRY], 1.0                                       # travel above the block
        else:
            p, g = [*hand[:2], Z_CARRY], 1.0                                        # lift clear, open
        p = self.toward(p)
        if noise > 0:
            p = p + self.np_random.normal(0.0, noise, 3)
        return self.action(p, g)
