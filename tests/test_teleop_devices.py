"""Teleop core: prompt schema, deadman, clutch, and every device through its real parsing path
(a pty for the keyboard, fake HID reports for the SpaceMouse, fake evdev events for the
gamepad, recorded streams for replay)."""
import collections
import os
import select
import struct
import sys
import termios
import types

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_ctrl.teleop import (
    DEVICES, Clutch, Deadman, GamepadDevice, KeyboardDevice, Prompt, ReplayDevice,
    SpaceMouseDevice, load_prompts, make_device, save_prompts, scripted_reach_stream,
)
from robot_ctrl.teleop import gamepad as gp

V, W = 0.10, 0.5  # default max linear / angular speed


def wxyz(rot: Rotation) -> np.ndarray:
    x, y, z, w = rot.as_quat()
    return np.array([w, x, y, z])


def as_rot(q) -> Rotation:
    w, x, y, z = q
    return Rotation.from_quat([x, y, z, w])


def same_rotation(q, rot: Rotation) -> bool:
    return np.allclose(as_rot(q).as_matrix(), rot.as_matrix(), atol=1e-9)


# ---------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    (dict(twist=[0, np.nan, 0, 0, 0, 0]), "twist"),
    (dict(twist=[0, 0, 0, 0, 0, np.inf]), "twist"),
    (dict(position=[0, 0, -np.inf]), "position"),
    (dict(stamp=np.nan), "stamp"),
    (dict(gripper=np.nan), "gripper"),
    (dict(quaternion=[np.nan, 0, 0, 0]), "quaternion"),
    (dict(joint_names=("a", "b"), joint_positions=[0.1, np.nan]), "joint_positions"),
])
def test_prompt_rejects_nan_and_inf_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}: .*NaN"):
        Prompt(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(twist=np.zeros(5)), r"twist: expected shape \(6,\), got \(5,\)"),
    (dict(twist=np.zeros((2, 3))), r"twist: expected shape \(6,\)"),
    (dict(position=[0, 0]), r"position: expected shape \(3,\)"),
    (dict(quaternion=[1, 0, 0]), r"quaternion: expected shape \(4,\)"),
    (dict(joint_names=("a", "b"), joint_positions=[0.0, 1.0, 2.0]),
     r"joint_positions: expected shape \(2,\)"),
    (dict(joint_names=("a", "a"), joint_positions=[0.0, 1.0]), "joint_names: duplicate"),
    (dict(joint_names="a", joint_positions=[0.0]), "joint_names: expected a sequence"),
    (dict(mode="velocity"), "mode: 'velocity' is not one of"),
    (dict(mode="joints"), "joint_names: mode 'joints' needs at least one joint"),
    (dict(gripper=1.5), r"gripper: 1.5 outside \[-1"),
    (dict(clutch="yes"), "clutch: expected a bool"),
    (dict(twist=["a"] * 6), "twist: not numeric"),
])
def test_prompt_rejects_bad_shapes_and_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Prompt(**kwargs)


def test_quaternion_renormalised_within_tolerance_rejected_beyond():
    q = np.array([1.0, 0.0, 0.0, 0.0]) * (1.0 + 5e-4)
    p = Prompt(mode="pose", quaternion=q)
    assert np.linalg.norm(p.quaternion) == pytest.approx(1.0, abs=1e-15)
    assert np.allclose(p.quaternion, [1, 0, 0, 0])
    for bad in ([2.0, 0, 0, 0], [0.0, 0, 0, 0], [0.9, 0, 0, 0]):
        with pytest.raises(ValueError, match=r"quaternion: not a unit quaternion \(norm"):
            Prompt(mode="pose", quaternion=bad)


def test_prompt_arrays_are_copied_and_read_only():
    twist = np.zeros(6)
    p = Prompt(mode="twist", twist=twist)
    twist[0] = 5.0
    assert p.twist[0] == 0.0
    with pytest.raises(ValueError):
        p.twist[0] = 1.0


def test_zero_hold_and_dict_roundtrip():
    p = Prompt(stamp=1.0, mode="pose", twist=[0.1, 0, 0, 0, 0, 0.2], position=[0.4, 0, 0.3],
               quaternion=wxyz(Rotation.from_euler("z", 30, degrees=True)), gripper=-1.0,
               clutch=True, intervene=True)
    h = p.hold(2.0)
    assert h.stamp == 2.0 and h.mode == "pose" and not h.twist.any()
    assert np.array_equal(h.position, p.position) and h.clutch and h.gripper == -1.0
    z = Prompt.zero(3.0, gripper=-1.0)
    assert z.mode == "none" and not z.twist.any() and z.gripper == -1.0 and not z.clutch
    j = Prompt(mode="joints", joint_names=("j1", "j2"), joint_positions=[0.1, -0.2])
    for q in (p, j):
        assert Prompt.from_dict(q.to_dict()) == q
    assert Prompt.from_dict(p.to_dict()) != h
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['twst'\]"):
        Prompt.from_dict({"twst": [0] * 6})


# ---------------------------------------------------------------------------------------
# deadman
# ---------------------------------------------------------------------------------------

def _moving(stamp):
    return Prompt(stamp=stamp, mode="pose", twist=[0.05, 0, 0, 0, 0, 0.1],
                  position=[0.5, 0.1, 0.2], gripper=-1.0, clutch=True, intervene=True)


def test_deadman_passes_fresh_prompts_then_zeroes_after_timeout():
    dm = Deadman(timeout=0.2, behaviour="zero")
    assert dm.update(0.0).mode == "none" and dm.tripped  # nothing ever received
    p = _moving(1.0)
    assert dm.update(1.0, p) is p and not dm.tripped
    assert dm.update(1.1) is p and dm.update(1.2) is p  # within the timeout: last prompt
    out = dm.update(1.21)
    assert dm.tripped and out.mode == "none" and not out.twist.any()
    assert out.stamp == 1.21 and out.gripper == -1.0  # the gripper command is not changed
    assert not out.clutch and not out.intervene
    q = _moving(1.5)
    assert dm.update(1.5, q) is q and not dm.tripped  # fresh input recovers


def test_deadman_hold_keeps_targets_with_zero_twist():
    dm = Deadman(timeout=0.1, behaviour="hold")
    p = _moving(0.0)
    dm.update(0.0, p)
    out = dm.update(0.5)
    assert dm.tripped and out.mode == "pose" and not out.twist.any()
    assert np.array_equal(out.position, p.position) and out.clutch and out.gripper == -1.0


def test_deadman_rejects_bad_configuration():
    with pytest.raises(ValueError, match="behaviour: 'stop' is not one of"):
        Deadman(0.1, "stop")
    with pytest.raises(ValueError, match="timeout: must be > 0"):
        Deadman(0.0)


# ---------------------------------------------------------------------------------------
# clutch
# ---------------------------------------------------------------------------------------

def test_clutch_base_frame_applies_device_delta_to_reference_and_holds_on_release():
    pr, Rr = np.array([0.4, 0.1, 0.3]), Rotation.from_euler("x", 90, degrees=True)
    p0, R0 = np.array([0.2, -0.1, 0.5]), Rotation.from_euler("y", 20, degrees=True)
    Rz30 = Rotation.from_euler("z", 30, degrees=True)
    c = Clutch()
    assert c.update(False, p0, wxyz(R0)) is None  # never engaged: no target
    pos, quat = c.update(True, p0, wxyz(R0), pr, wxyz(Rr))
    assert np.allclose(pos, pr) and same_rotation(quat, Rr)  # press: target = reference
    # the device moves 5 cm along x and turns 30 degrees about z
    p1, R1 = p0 + [0.05, 0, 0], Rz30 * R0
    pos, quat = c.update(True, p1, wxyz(R1), robot_position=[9, 9, 9])  # robot pose ignored
    assert np.allclose(pos, pr + [0.05, 0, 0])
    assert same_rotation(quat, Rz30 * Rr)
    # release: the target holds wherever the device goes
    held = c.update(False, p1 + [1, 1, 1], wxyz(R0))
    assert np.allclose(held[0], pr + [0.05, 0, 0]) and same_rotation(held[1], Rz30 * Rr)
    # press again: a new reference (the robot pose now) and a new device origin
    pos, quat = c.update(True, [0, 0, 0], [1, 0, 0, 0], [0.3, 0.3, 0.3], [1, 0, 0, 0])
    assert np.allclose(pos, [0.3, 0.3, 0.3]) and same_rotation(quat, Rotation.identity())
    pos, _ = c.update(True, [0, 0, -0.02], [1, 0, 0, 0])
    assert np.allclose(pos, [0.3, 0.3, 0.28])


def test_clutch_ee_frame_composes_delta_in_the_end_effector_frame():
    pr, Rr = np.array([0.4, 0.1, 0.3]), Rotation.from_euler("z", 90, degrees=True)
    Rz30 = Rotation.from_euler("z", 30, degrees=True)
    c = Clutch(frame="ee")
    c.update(True, [1.0, 2.0, 3.0], [1, 0, 0, 0], pr, wxyz(Rr))
    pos, quat = c.update(True, [1.05, 2.0, 3.0], wxyz(Rz30))
    # 5 cm along the device x = the end-effector x, which the reference turns onto base +y
    assert np.allclose(pos, pr + [0, 0.05, 0])
    assert same_rotation(quat, Rr * Rz30)


def test_clutch_needs_robot_pose_on_first_press():
    with pytest.raises(ValueError, match="robot_position/robot_quaternion"):
        Clutch().update(True, [0, 0, 0], [1, 0, 0, 0])
    with pytest.raises(ValueError, match="frame:"):
        Clutch(frame="tool")


# ---------------------------------------------------------------------------------------
# keyboard through a real pty
# ---------------------------------------------------------------------------------------

@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def press(master, slave, data: bytes):
    os.write(master, data)
    assert select.select([slave], [], [], 2.0)[0], "pty delivered nothing"


def test_keyboard_pty_twist_holds_then_decays(pty_pair):
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    dev = KeyboardDevice(fd=slave, key_hold=0.15).open()
    assert dev.ok, dev.error
    assert not termios.tcgetattr(slave)[3] & (termios.ICANON | termios.ECHO)  # cbreak, no echo
    assert not dev.poll(0.0).twist.any()
    press(master, slave, b"w")
    p = dev.poll(10.0)
    assert p.mode == "twist" and np.allclose(p.twist, [V, 0, 0, 0, 0, 0])
    assert dev.fresh
    assert np.allclose(dev.poll(10.14).twist, [V, 0, 0, 0, 0, 0])  # held for key_hold
    assert not dev.poll(10.16).twist.any()  # then back to zero
    press(master, slave, b"wa")  # two axes at once
    assert np.allclose(dev.poll(11.0).twist, [V, V, 0, 0, 0, 0])
    press(master, slave, b"s")  # the opposite key replaces the axis
    assert np.allclose(dev.poll(11.05).twist, [-V, V, 0, 0, 0, 0])
    press(master, slave, b"0")  # stop
    assert not dev.poll(11.06).twist.any()
    for k, (key, twist) in enumerate((
            (b"f", [0, 0, -V, 0, 0, 0]), (b"u", [0, 0, 0, W, 0, 0]),
            (b"k", [0, 0, 0, 0, -W, 0]), (b"\x1b[A", [0, 0, 0, 0, W, 0]),
            (b"\x1b[D", [0, 0, 0, 0, 0, W]), (b"l", [0, 0, 0, 0, 0, -W]))):
        press(master, slave, key)
        p = dev.poll(20.0 + k)
        assert np.allclose(p.twist, twist), key
        assert not p.estop, key  # arrow escape sequences are not an e-stop
    dev.close()
    assert termios.tcgetattr(slave) == before  # the terminal is restored


def test_keyboard_pty_buttons(pty_pair):
    master, slave = pty_pair
    with KeyboardDevice(fd=slave) as dev:
        p = dev.poll(0.0)
        assert p.gripper == 1.0 and not p.clutch and not p.intervene and not p.estop
        press(master, slave, b" ")
        assert dev.poll(0.1).gripper == -1.0
        press(master, slave, b" ")
        assert dev.poll(0.2).gripper == 1.0
        press(master, slave, b"c")
        assert dev.poll(0.3).clutch
        press(master, slave, b"v")
        p = dev.poll(0.4)
        assert p.clutch and p.intervene
        press(master, slave, b"\x1b")  # Escape
        assert dev.poll(0.5).estop
        press(master, slave, b"R")
        assert not dev.poll(0.6).estop
        press(master, slave, b"x")
        assert dev.poll(0.7).estop
    assert dev.status == "closed"


def test_keyboard_escape_sequences_split_across_reads(pty_pair):
    master, slave = pty_pair
    dev = KeyboardDevice(fd=slave).open()
    dev.handle_bytes(b"\x1b[", 1.0)  # an arrow split after "ESC [": completed by the next read
    dev.handle_bytes(b"", 1.0)
    dev.handle_bytes(b"A", 1.0)
    p = dev.poll(1.01)
    assert not p.estop and np.allclose(p.twist, [0, 0, 0, 0, W, 0])
    dev.handle_bytes(b"\x1b", 2.0)  # a lone Esc fires at once ...
    assert dev.poll(2.0).estop
    dev.handle_bytes(b"[D", 2.0)  # ... and a late "[D" tail is dropped, not read as keys
    assert not dev.poll(2.01).twist.any()
    press(master, slave, b"\x1b[5~")  # other sequences (PageUp) are ignored
    assert not dev.poll(3.0).twist.any()
    dev.close()


def test_keyboard_non_tty_gives_clear_error_and_zero_prompt():
    r, w = os.pipe()
    try:
        os.write(w, b"wwww")
        dev = KeyboardDevice(fd=r).open()
        assert dev.status == "not_a_tty" and not dev.ok
        assert "is not a terminal (tty)" in dev.error
        p = dev.poll(1.0)
        assert p.mode == "none" and not p.twist.any() and not dev.fresh
        dev.close()
    finally:
        os.close(r)
        os.close(w)


def test_keyboard_hangup_is_disconnected_not_a_crash(pty_pair):
    master, slave = pty_pair
    dev = KeyboardDevice(fd=slave).open()
    press(master, slave, b" ")
    assert dev.poll(0.0).gripper == -1.0
    os.close(master)
    p = dev.poll(0.1)
    assert dev.status == "disconnected" and "unplugged" in dev.error
    assert p.mode == "none" and not p.twist.any() and p.gripper == -1.0
    dev.close()


# ---------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------

def ramp_stream(n=101, dt=0.01):
    """vx(t) = t over 1 s."""
    return [Prompt(stamp=5.0 + k * dt, mode="twist", twist=[k * dt, 0, 0, 0, 0, 0])
            for k in range(n)]


def test_replay_latency_shifts_the_stream():
    stream = ramp_stream()
    plain = ReplayDevice(stream).open()
    late = ReplayDevice(stream, latency=0.1).open()
    for dev in (plain, late):
        dev.poll(100.0)  # starts the replay clock
    for t in (0.3, 0.5, 0.9):
        assert plain.poll(100.0 + t).twist[0] == pytest.approx(t)
        out = late.poll(100.0 + t)
        assert out.twist[0] == pytest.approx(t - 0.1) and out.stamp == 100.0 + t
    assert late.poll(100.0 + 1.1).twist[0] == pytest.approx(1.0)  # the last sample, late
    assert ReplayDevice(stream, latency=0.1, start=0.0).open().poll(0.05).mode == "none"
    assert plain.poll(100.0 + 1.5).mode == "none" and plain.status == "ended"


def test_replay_noise_std_and_bias():
    const = [Prompt(mode="twist", twist=[0.05, 0, 0, 0, 0, 0.2])]
    bias = np.array([0.01, -0.02, 0.0, 0.0, 0.0, 0.3])
    dev = ReplayDevice(const, noise_std=(0.02, 0.1), bias=bias, seed=1).open()
    tw = np.array([dev.poll(k * 0.01).twist for k in range(20000)])
    assert np.allclose(tw.std(axis=0), [0.02] * 3 + [0.1] * 3, rtol=0.03)
    assert np.allclose(tw.mean(axis=0), const[0].twist + bias, atol=3e-3)
    biased = ReplayDevice(const, bias=bias).open().poll(0.0)
    assert np.allclose(biased.twist, const[0].twist + bias)  # no noise: exactly the bias


def test_replay_same_seed_same_output():
    kw = dict(noise_std=0.05, dropout=0.3, latency=0.02)
    runs = []
    for seed in (7, 7, 8):
        dev = ReplayDevice(ramp_stream(), seed=seed, **kw).open()
        runs.append([(dev.poll(k * 0.01), dev.fresh) for k in range(100)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_replay_dropouts_trip_the_deadman():
    const = [Prompt(mode="twist", twist=[0.05, 0, 0, 0, 0, 0])]

    def run(dropout):
        dev = ReplayDevice(const, dropout=dropout, seed=3).open()
        dm = Deadman(timeout=0.05)
        fresh, tripped = [], 0
        for k in range(2000):
            now = k * 0.01
            p = dev.poll(now)
            fresh.append(dev.fresh)
            out = dm.update(now, p if dev.fresh else None)
            tripped += dm.tripped
            if dm.tripped:
                assert not out.twist.any()
            else:
                assert out.twist[0] == 0.05
        return np.mean(fresh), tripped

    fresh, tripped = run(0.0)
    assert fresh == 1.0 and tripped == 0
    fresh, tripped = run(0.7)
    assert fresh == pytest.approx(0.3, abs=0.04) and tripped > 0


def test_replay_file_roundtrip(tmp_path):
    stream = ramp_stream(5) + [Prompt(stamp=6.0, mode="joints", joint_names=("a", "b"),
                                      joint_positions=[0.1, 0.2], gripper=-1.0, estop=True)]
    path = tmp_path / "prompts.jsonl"
    save_prompts(path, stream)
    assert load_prompts(path) == stream
    dev = make_device("replay", stream=path).open()
    assert dev.ok and dev.poll(0.0) == stream[0].with_stamp(0.0)
    (tmp_path / "bad.jsonl").write_text('{"mode": "twist"}\n{"twist": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: bad prompt: twist: expected shape"):
        load_prompts(tmp_path / "bad.jsonl")
    missing = ReplayDevice(tmp_path / "nope.jsonl").open()
    assert missing.status == "not_found" and missing.poll(0.0).mode == "none"


def test_scripted_reach_stream_goes_straight_at_bounded_speed():
    start, targets = np.array([0.4, 0.0, 0.3]), np.array([[0.5, 0.1, 0.3], [0.5, 0.1, 0.1]])
    dt, speed = 0.02, 0.08
    stream = scripted_reach_stream(start, targets, speed=speed, dt=dt, tol=0.002)
    v = np.array([p.twist[:3] for p in stream])
    assert np.all(np.linalg.norm(v, axis=1) <= speed + 1e-12)
    assert np.isclose(np.linalg.norm(v[0]), speed)  # far away: clipped to the speed
    assert not stream[-1].twist.any() and np.all(np.linalg.norm(v[:-1], axis=1) > 0)
    path = start + np.cumsum(v * dt, axis=0)
    assert np.linalg.norm(path[-1] - targets[-1]) < 0.002
    first = path[: np.argmax(np.linalg.norm(path - targets[0], axis=1) < 0.002) + 1]
    d = targets[0] - start
    off_line = np.linalg.norm(np.cross(first - start, d), axis=1) / np.linalg.norm(d)
    assert off_line.max() < 1e-12  # a straight line to the first target
    assert np.allclose(np.diff([p.stamp for p in stream]), dt)


# ---------------------------------------------------------------------------------------
# SpaceMouse through fake HID reports
# ---------------------------------------------------------------------------------------

class FakeHid:
    def __init__(self):
        self.reports, self.unplugged = collections.deque(), False

    def read(self, size, timeout_ms):
        if self.unplugged:
            raise OSError(19, "No such device")
        return self.reports.popleft()[:size] if self.reports else b""


def trans(x, y, z):
    return struct.pack("<Bhhh", 1, x, y, z)


def rot(rx, ry, rz):
    return struct.pack("<Bhhh", 2, rx, ry, rz)


def both(x, y, z, rx, ry, rz):
    return struct.pack("<Bhhhhhh", 1, x, y, z, rx, ry, rz)


def buttons(mask):
    return struct.pack("<BB", 3, mask)


def test_spacemouse_split_and_combined_reports_parse_to_the_same_twist():
    # push away full, right half, lift full; twist counter-clockwise full, tilt about hid x
    raw = (175, -350, -350, 350, 0, -350)
    u_half = (0.5 - 0.1) / 0.9  # half deflection through the rescaled deadband
    expected = [V, -V * u_half, V, 0, -W, W]  # base = A @ hid: (-y, -x, -z) per vector
    hid_split, hid_comb = FakeHid(), FakeHid()
    hid_split.reports += [trans(*raw[:3]), rot(*raw[3:])]
    assert len(hid_split.reports[0]) == 7
    hid_comb.reports.append(both(*raw))
    assert len(hid_comb.reports[0]) == 13
    for reader in (hid_split, hid_comb):
        dev = SpaceMouseDevice(reader).open()
        p = dev.poll(1.0)
        assert dev.ok and p.mode == "twist"
        np.testing.assert_allclose(p.twist, expected, atol=1e-12)


def test_spacemouse_axis_convention_one_axis_at_a_time():
    hid = FakeHid()
    dev = SpaceMouseDevice(hid, deadband=0.0).open()
    cases = [
        (trans(0, -350, 0), [V, 0, 0, 0, 0, 0]),    # push away      -> +x
        (trans(-350, 0, 0), [0, V, 0, 0, 0, 0]),    # push left      -> +y
        (trans(0, 0, -350), [0, 0, V, 0, 0, 0]),    # lift           -> +z
        (trans(0, 0, 350), [0, 0, -V, 0, 0, 0]),    # push down      -> -z
        (rot(0, 0, -350), [0, 0, 0, 0, 0, W]),      # counter-clockwise from above -> +yaw
        (rot(0, 350, 0), [0, 0, 0, -W, 0, 0]),      # about hid +y (toward user) -> -x roll
    ]
    for report, twist in cases:
        hid.reports += [trans(0, 0, 0), rot(0, 0, 0), report]
        np.testing.assert_allclose(dev.poll(0.0).twist, twist, atol=1e-12)


def test_spacemouse_deadband_and_clipping():
    hid = FakeHid()
    dev = SpaceMouseDevice(hid, deadband=0.1).open()
    hid.reports.append(both(30, -34, 20, -30, 34, 0))  # all below 10 % of 350
    assert not dev.poll(0.0).twist.any()
    hid.reports.append(both(0, -700, 0, 0, 0, 0))  # beyond full scale: clipped
    np.testing.assert_allclose(dev.poll(0.1).twist, [V, 0, 0, 0, 0, 0])
    hid.reports.append(both(0, -70, 0, 0, 0, 0))  # 20 %: (0.2 - 0.1) / 0.9 of max
    np.testing.assert_allclose(dev.poll(0.2).twist[0], V * 0.1 / 0.9)


def test_spacemouse_buttons():
    hid = FakeHid()
    dev = SpaceMouseDevice(hid).open()
    assert dev.poll(0.0).gripper == 1.0
    hid.reports.append(buttons(0b01))  # button 0 down: gripper toggles
    p = dev.poll(0.1)
    assert p.gripper == -1.0 and not p.clutch
    hid.reports.append(buttons(0b11))  # button 1 down too: clutch held, no second toggle
    p = dev.poll(0.2)
    assert p.gripper == -1.0 and p.clutch
    hid.reports += [buttons(0b00), buttons(0b01)]  # release all, press 0 again
    p = dev.poll(0.3)
    assert p.gripper == 1.0 and not p.clutch
    hid.reports.append(struct.pack("<BBB", 0x17, 80, 0))  # battery report: ignored
    assert dev.poll(0.4).gripper == 1.0


def test_spacemouse_unplugged_gives_zero_prompt_and_status():
    hid = FakeHid()
    dev = SpaceMouseDevice(hid, reconnect_period=1.0).open()
    hid.reports += [buttons(1), buttons(0), both(0, -350, 0, 0, 0, 0)]
    assert dev.poll(0.0).twist[0] == V
    hid.unplugged = True
    p = dev.poll(0.1)
    assert dev.status == "disconnected" and "unplugged" in dev.error and not dev.fresh
    assert p.mode == "none" and not p.twist.any() and p.gripper == -1.0  # gripper kept
    assert dev.poll(0.5).mode == "none"  # still down, no crash
    hid.unplugged = False  # plugged back in: reopened after reconnect_period
    hid.reports.append(both(0, 0, -350, 0, 0, 0))
    p = dev.poll(1.2)
    assert dev.ok and np.allclose(p.twist, [0, 0, V, 0, 0, 0]) and p.gripper == -1.0


def test_spacemouse_without_hidapi_gives_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)  # import hid -> ImportError
    dev = make_device("spacemouse").open()
    assert dev.status == "not_installed" and "'hidapi' is not installed" in dev.error
    assert dev.poll(0.0).mode == "none"


class FakeHidapiDevice:
    """Stands in for ``hidapi``'s ``hid.device``: read() returns a list of ints."""

    def __init__(self):
        self.path, self.closed = None, False
        self.reports = [list(both(0, 0, -350, 0, 0, 0))]

    def open_path(self, path):
        self.path = path

    def read(self, size, timeout_ms=0):
        if self.closed:
            raise ValueError("not open")  # not an OSError: the adapter must convert it
        return self.reports.pop(0) if self.reports else []

    def close(self):
        self.closed = True


def test_spacemouse_opens_through_hidapi_module(monkeypatch):
    made = []

    def device():
        made.append(FakeHidapiDevice())
        return made[-1]

    infos = [{"vendor_id": 0x046D, "product_id": 0xC52B, "path": b"/dev/hidraw0"},  # a mouse
             {"vendor_id": 0x256F, "product_id": 0xC635, "path": b"/dev/hidraw3",
              "usage_page": 1, "usage": 2},
             {"vendor_id": 0x256F, "product_id": 0xC635, "path": b"/dev/hidraw4",
              "usage_page": 1, "usage": 8}]
    monkeypatch.setitem(sys.modules, "hid", types.SimpleNamespace(
        enumerate=lambda: infos, device=device))
    dev = SpaceMouseDevice().open()
    assert dev.ok and made[0].path == b"/dev/hidraw4"  # the multi-axis interface
    np.testing.assert_allclose(dev.poll(0.0).twist, [0, 0, V, 0, 0, 0])
    made[0].closed = True  # the library fails in its own way: still "disconnected"
    assert dev.poll(0.1).mode == "none" and dev.status == "disconnected"
    dev.close()
    infos[1:] = []  # only the ordinary mouse left
    dev = SpaceMouseDevice().open()
    assert dev.status == "not_found" and "no 3Dconnexion SpaceMouse found" in dev.error
    assert dev.poll(0.0).mode == "none"


# ---------------------------------------------------------------------------------------
# gamepad through fake evdev events
# ---------------------------------------------------------------------------------------

class FakeEvents:
    def __init__(self):
        self.queue, self.unplugged = [], False

    def read(self):
        if self.unplugged:
            raise OSError(19, "No such device")
        out, self.queue = self.queue, []
        return out


EvdevEvent = collections.namedtuple("EvdevEvent", "type code value")
ABS, KEY = gp.EV_ABS, gp.EV_KEY


def test_gamepad_sticks_and_triggers():
    ev = FakeEvents()
    dev = GamepadDevice(ev).open()
    assert not dev.poll(0.0).twist.any()  # at rest
    ev.queue += [(ABS, gp.ABS_Y, -32768), (0, 0, 0)]  # left stick full forward (+SYN)
    p = dev.poll(0.1)
    assert dev.ok and p.mode == "twist" and np.allclose(p.twist, [V, 0, 0, 0, 0, 0])
    ev.queue += [(ABS, gp.ABS_Y, 0), (ABS, gp.ABS_X, -32768)]  # full left
    np.testing.assert_allclose(dev.poll(0.2).twist, [0, V, 0, 0, 0, 0])
    ev.queue += [(ABS, gp.ABS_X, 0), (ABS, gp.ABS_RZ, 1023)]  # right trigger: up
    np.testing.assert_allclose(dev.poll(0.3).twist, [0, 0, V, 0, 0, 0])
    ev.queue += [(ABS, gp.ABS_Z, 1023)]  # both triggers cancel
    assert not dev.poll(0.4).twist.any()
    ev.queue += [(ABS, gp.ABS_Z, 0), (ABS, gp.ABS_RZ, 0), (ABS, gp.ABS_RX, 32767),
                 (ABS, gp.ABS_RY, -32768)]  # right stick right and up
    np.testing.assert_allclose(dev.poll(0.5).twist, [0, 0, 0, 0, W, -W], atol=1e-4)
    ev.queue += [EvdevEvent(ABS, gp.ABS_RX, 0), EvdevEvent(ABS, gp.ABS_RY, 0),
                 EvdevEvent(ABS, gp.ABS_Y, -16384)]  # half forward, evdev-style events
    np.testing.assert_allclose(dev.poll(0.6).twist[0], V * (0.5 - 0.1) / 0.9, rtol=1e-3)


def test_gamepad_deadband_and_flat():
    ev = FakeEvents()
    dev = GamepadDevice(ev, deadband=0.1).open()
    ev.queue += [(ABS, gp.ABS_Y, -3000), (ABS, gp.ABS_X, 100), (ABS, gp.ABS_RZ, 90)]
    assert not dev.poll(0.0).twist.any()  # 9 % of the stick, within flat, 9 % of the trigger
    ev.queue += [(ABS, gp.ABS_Y, -6554)]  # 20 %
    assert dev.poll(0.1).twist[0] == pytest.approx(V * 0.1 / 0.9, rel=1e-3)
    # absinfo from the device: an 8-bit stick centred at 128 with a flat of 15
    dev = GamepadDevice(ev, absinfo={gp.ABS_Y: (0, 255, 15)}, deadband=0.0).open()
    ev.queue += [(ABS, gp.ABS_Y, 140)]  # within flat of the centre 127.5
    assert not dev.poll(0.0).twist.any()
    ev.queue += [(ABS, gp.ABS_Y, 100)]  # beyond flat: (127.5 - 100) / 127.5 forward
    assert dev.poll(0.05).twist[0] == pytest.approx(V * 27.5 / 127.5)
    ev.queue += [(ABS, gp.ABS_Y, 0)]
    assert dev.poll(0.1).twist[0] == pytest.approx(V)


def test_gamepad_buttons():
    ev = FakeEvents()
    dev = GamepadDevice(ev).open()
    ev.queue += [(KEY, gp.BTN_SOUTH, 1), (KEY, gp.BTN_SOUTH, 2)]  # press + auto-repeat
    assert dev.poll(0.0).gripper == -1.0
    ev.queue += [(KEY, gp.BTN_SOUTH, 0), (KEY, gp.BTN_SOUTH, 1), (KEY, gp.BTN_SOUTH, 0)]
    assert dev.poll(0.1).gripper == 1.0
    ev.queue += [(KEY, gp.BTN_TL, 1), (KEY, gp.BTN_TR, 1), (KEY, gp.BTN_NORTH, 1)]
    p = dev.poll(0.2)
    assert p.clutch and p.intervene and np.allclose(p.twist, [0, 0, 0, W, 0, 0])
    ev.queue += [(KEY, gp.BTN_TL, 0), (KEY, gp.BTN_NORTH, 0), (KEY, gp.BTN_WEST, 1)]
    p = dev.poll(0.3)
    assert not p.clutch and p.intervene and np.allclose(p.twist, [0, 0, 0, -W, 0, 0])
    ev.queue += [(KEY, gp.BTN_EAST, 1), (KEY, gp.BTN_EAST, 0)]
    assert dev.poll(0.4).estop  # latched
    assert dev.poll(0.5).estop
    ev.queue += [(KEY, gp.BTN_START, 1)]
    assert not dev.poll(0.6).estop


def test_gamepad_disconnect_gives_zero_prompt():
    ev = FakeEvents()
    dev = GamepadDevice(ev).open()
    ev.queue += [(ABS, gp.ABS_Y, -32768), (KEY, gp.BTN_SOUTH, 1)]
    assert dev.poll(0.0).twist[0] == V
    ev.unplugged = True
    p = dev.poll(0.1)
    assert dev.status == "disconnected" and "No such device" in dev.error
    assert p.mode == "none" and not p.twist.any() and p.gripper == -1.0


def test_gamepad_opens_through_evdev_module(monkeypatch):
    AbsInfo = collections.namedtuple("AbsInfo", "value min max fuzz flat resolution")

    class FakeInputDevice:
        def __init__(self, path):
            self.path, self.closed = path, False
            self.pad = path.endswith("event7")

        def capabilities(self, absinfo=True):
            if not self.pad:  # a keyboard
                return {KEY: [30, 31]}
            axes = [(gp.ABS_X, AbsInfo(128, 0, 255, 0, 10, 0)),
                    (gp.ABS_Y, AbsInfo(0, 0, 255, 0, 10, 0))]  # held forward at start
            return {KEY: [gp.BTN_SOUTH, gp.BTN_TL],
                    ABS: axes if absinfo else [c for c, _ in axes]}

        def active_keys(self):
            return [gp.BTN_TL]  # clutch held at start

        def read(self):
            raise BlockingIOError  # what evdev does when no event is pending

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "evdev", types.SimpleNamespace(
        list_devices=lambda: ["/dev/input/event3", "/dev/input/event7"],
        InputDevice=FakeInputDevice))
    dev = GamepadDevice().open()
    assert dev.ok, dev.error
    p = dev.poll(0.0)
    assert p.clutch and p.twist[0] == pytest.approx(V) and not p.twist[1:].any()
    monkeypatch.setitem(sys.modules, "evdev", types.SimpleNamespace(
        list_devices=lambda: ["/dev/input/event3"], InputDevice=FakeInputDevice))
    dev = GamepadDevice().open()
    assert dev.status == "not_found" and "no gamepad found" in dev.error


def test_gamepad_without_evdev_gives_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "evdev", None)
    dev = GamepadDevice().open()
    assert dev.status == "not_installed" and "'evdev' is not installed" in dev.error
    assert dev.poll(0.0).mode == "none"


# ---------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------

def test_make_device_by_name_and_unknown_name():
    assert {"keyboard", "gamepad", "spacemouse", "replay"} <= set(DEVICES)
    dev = make_device("replay", stream=ramp_stream(3), max_linear_speed=0.2)
    assert isinstance(dev, ReplayDevice) and dev.max_linear_speed == 0.2
    with pytest.raises(ValueError, match=r"unknown teleop device 'joystick'; known devices: "
                                         r"gamepad, keyboard, replay, spacemouse"):
        make_device("joystick")
    with pytest.raises(ValueError, match="max_linear_speed: must be a finite number > 0"):
        make_device("gamepad", max_linear_speed=-1.0)
