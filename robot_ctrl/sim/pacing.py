"""Wall-clock pacing for realtime loops, and loop statistics."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


class Pacer:
    """Sleeps until the next period boundary; sleep() for the bulk, a short spin for the end.

    If the loop falls more than one period behind it re-synchronises (counted as an overrun)
    instead of bursting to catch up.
    """

    SPIN_S = 2e-4

    def __init__(self, period: float):
        self.period = float(period)
        self.next = time.perf_counter() + self.period
        self.overruns = 0

    def wait(self) -> float:
        """Block until the next tick; returns how late (s) this tick is released."""
        while True:
            remaining = self.next - time.perf_counter()
            if remaining <= 0:
                break
            if remaining > self.SPIN_S:
                time.sleep(remaining - self.SPIN_S)
        now = time.perf_counter()
        late = now - self.next
        if late > self.period:
            self.overruns += 1
            self.next = now + self.period
        else:
            self.next += self.period
        return late


@dataclass
class LoopStats:
    """Counters for a command/state loop, with latency from state publish to the next command."""

    commands: int = 0
    fresh: int = 0
    missed: int = 0
    overruns: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=100_000))
    _t_pub: float = 0.0
    _answered: bool = True

    def mark_published(self) -> None:
        self._t_pub = time.perf_counter()
        self._answered = False

    def mark_command(self) -> None:
        self.commands += 1
        if not self._answered:
            self.latencies.append(time.perf_counter() - self._t_pub)
            self._answered = True
