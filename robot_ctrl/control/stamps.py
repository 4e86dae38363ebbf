"""Stamps of a state stream, checked against their arrival: out-of-order states and clock jumps.

The controller and the safety filter take time from the joint states' stamps (sim time in
simulation, the robot's clock on hardware). Two faults break that time base:

* **out of order**: a state older than the last one accepted (a storm of re-sent or delayed
  messages) must not move time backwards;
* **a jump**: one state stamped far ahead (a clock step, a corrupted stamp) must not move
  time ahead, or the chunk executor skips its reference forward (a burst of motion) and every
  following, correctly stamped state looks "older" and is refused (a stall).

`StampGuard.check(t, rx)` compares each stamp t with its arrival time rx (a monotonic clock)
against the last accepted state: stamps may advance at most `tolerance` seconds more than the
arrival times did. An equal stamp soon after (`duplicate_window`) is a copy ("duplicate": the
caller does not answer it again); later, it is a re-publication (accepted: lockstep simulation
re-sends the state when it waits for a command). A state a little older than the last (within `tolerance`) is
refused as out of order. One that jumps ahead or goes back further is refused and becomes the
start of a candidate timeline; when `confirm` states in a row agree with that
candidate (stamps advancing with their arrivals), the clock really changed: the guard
re-anchors on it and says "reset" (the caller holds where the robot is, as after a simulator
reset). A stamp at zero after non-zero ones (the simulator's reset) is a reset at once.
"""
from __future__ import annotations

import math


class StampError(ValueError):
    """The state's stamp is refused; the message says why."""


class StampGuard:
    def __init__(self, tolerance: float = 0.05, confirm: int = 3, duplicate_window: float = 0.01):
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        if confirm < 1:
            raise ValueError(f"confirm must be >= 1, got {confirm}")
        self.tolerance = float(tolerance)
        self.confirm = int(confirm)
        self.duplicate_window = float(duplicate_window)
        self.duplicates = 0  # copies of the last state within duplicate_window (answered once)
        self.t: float | None = None   # last accepted stamp
        self.rx: float | None = None  # its arrival
        self._cand: tuple[float, float] | None = None  # newest candidate (t, rx)
        self._cand_n = 0
        self.jumps = 0       # states refused for jumping ahead
        self.older = 0       # states refused for going back
        self.resets = 0      # timelines adopted (confirmed jumps, simulator resets)

    def reset(self) -> None:
        self.t = self.rx = self._cand = None
        self._cand_n = 0

    def _accept(self, t: float, rx: float) -> None:
        self.t, self.rx = t, rx
        self._cand, self._cand_n = None, 0

    def _consistent(self, t0: float, rx0: float, t: float, rx: float) -> bool:
        dt = t - t0
        return 0.0 <= dt <= (rx - rx0) + self.tolerance

    def check(self, t: float, rx: float) -> str:
        """'ok' (accepted), 'reset' (accepted: a new timeline), 'duplicate' (the last state again
        within `duplicate_window`: nothing new, do not answer it twice), or StampError."""
        if not (math.isfinite(t) and math.isfinite(rx)):
            raise StampError("non-finite stamp")
        if self.t is None:
            self._accept(t, rx)
            return "ok"
        if t == self.t and rx - self.rx < self.duplicate_window:
            self.duplicates += 1
            return "duplicate"
        if self._consistent(self.t, self.rx, t, rx):
            self._accept(t, rx)
            return "ok"
        if t < 1e-9 < self.t:  # the simulator's reset: its clock restarts at zero
            self._accept(t, rx)
            self.resets += 1
            return "reset"
        if self.t - self.tolerance <= t < self.t:  # a little late: out of order, not another clock
            self.older += 1
            raise StampError(f"stamp {t:.6f} s is older than the last state ({self.t:.6f} s)")
        # far off the current timeline: a candidate for a new one
        if self._cand is not None and self._consistent(self._cand[0], self._cand[1], t, rx):
            self._cand, self._cand_n = (t, rx), self._cand_n + 1
        else:
            self._cand, self._cand_n = (t, rx), 1
        if self._cand_n >= self.confirm:
            self._accept(t, rx)
            self.resets += 1
            return "reset"
        if t < self.t:
            self.older += 1
            raise StampError(f"stamp {t:.6f} s is older than the last state ({self.t:.6f} s)")
        self.jumps += 1
        raise StampError(f"stamp {t:.6f} s jumps {t - self.t:.3f} s ahead of the last state, which arrived "
                         f"{rx - self.rx:.3f} s ago (a clock jump?)")
