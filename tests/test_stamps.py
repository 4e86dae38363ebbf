"""StampGuard (robot_ctrl.control.stamps): the time base of the controller and the safety
filter survives out-of-order states, a single jumped stamp, a real clock jump and the
simulator's reset."""
from __future__ import annotations

import numpy as np
import pytest

from robot_ctrl.control.stamps import StampError, StampGuard

DT = 0.002


def _stream(g, t0, rx0, n, dt=DT):
    return [g.check(t0 + k * dt, rx0 + k * dt) for k in range(n)]


def test_a_steady_stream_and_re_publications_pass():
    g = StampGuard()
    assert set(_stream(g, 10.0, 100.0, 500)) == {"ok"}
    assert g.check(g.t, g.rx + 0.001) == "duplicate"  # a copy: nothing new
    assert g.check(g.t, g.rx + 0.1) == "ok"  # the same state much later (lockstep re-publication)
    assert g.duplicates == 1
    # stamps running ahead of the arrivals (lockstep faster than real time) by < tolerance per step
    assert set(g.check(g.t + DT, g.rx + 0.0005) for _ in range(20)) == {"ok"}


def test_out_of_order_states_are_refused_without_moving_time():
    g = StampGuard()
    _stream(g, 10.0, 100.0, 10)
    t, rx = g.t, g.rx
    rng = np.random.default_rng(0)
    for _ in range(200):  # a storm of late copies: never a new timeline
        with pytest.raises(StampError, match="older"):
            g.check(t - rng.uniform(0.001, 0.02), rx + 0.001)
    assert g.t == t and g.resets == 0 and g.older == 200
    assert g.check(t + DT, rx + DT) == "ok"


def test_one_jumped_stamp_is_refused_and_the_stream_goes_on():
    g = StampGuard()
    _stream(g, 10.0, 100.0, 10)
    t, rx = g.t, g.rx
    with pytest.raises(StampError, match="jumps 1.000 s ahead"):
        g.check(t + 1.0, rx + DT)
    assert g.t == t  # time did not move
    assert set(_stream(g, t + 2 * DT, rx + 2 * DT, 50)) == {"ok"}  # the correct stamps go on
    assert g.jumps == 1 and g.resets == 0


def test_a_real_clock_jump_is_adopted_after_confirmation():
    g = StampGuard(confirm=3)
    _stream(g, 10.0, 100.0, 10)
    rx = g.rx
    out = []
    for k in range(1, 6):
        try:
            out.append(g.check(25.0 + k * DT, rx + k * DT))
        except StampError:
            out.append("refused")
    assert out == ["refused", "refused", "reset", "ok", "ok"]
    assert g.resets == 1 and g.t == pytest.approx(25.0 + 5 * DT)
    # backwards too (a clock stepped back), and the simulator's reset to zero at once
    out = []
    for k in range(1, 5):
        try:
            out.append(g.check(3.0 + k * DT, rx + 0.01 + k * DT))
        except StampError:
            out.append("refused")
    assert out == ["refused", "refused", "reset", "ok"]
    assert g.check(0.0, rx + 0.1) == "reset"


def test_bad_arguments():
    with pytest.raises(ValueError):
        StampGuard(tolerance=0.0)
    with pytest.raises(ValueError):
        StampGuard(confirm=0)
    with pytest.raises(StampError, match="non-finite"):
        StampGuard().check(float("nan"), 1.0)
