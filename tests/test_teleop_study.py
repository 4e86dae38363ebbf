"""The scripted-operator study (robot-ctrl bench teleop): a biased, noisy, delayed operator
reaches targets through the replay device; with the committed reach policy sharing control
(blend), more episodes succeed than with teleoperation alone, on the same seeds and corruption."""
from __future__ import annotations

import torch

from robot_ctrl.paths import checkpoint_path
from robot_ctrl.teleop.study import operator_study


def test_shared_autonomy_beats_a_biased_operator_alone():
    torch.set_num_threads(1)
    r = operator_study(str(checkpoint_path("mlp_reach.safetensors")), episodes=4, bias=(0.04, 0.0), latency=0.2,
                       dropout=0.1, safety=None)
    teleop, shared, alone = r["teleop_only"], r["shared_autonomy"], r["policy_only"]
    assert shared["success_rate"] >= 0.75, r
    assert shared["success_rate"] > teleop["success_rate"], r
    assert shared["final_distance_m_median"] < teleop["final_distance_m_median"], r
    assert alone["success_rate"] >= 0.75 and alone["time_to_target_s_median"] > 0, r
