"""Helpers for graph tests: start node executables as processes (as `ros2 launch` would) and
observe them from a probe node in the test process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def start_node(executable: str, params_file: str, overrides: dict | None = None,
               remap: dict | None = None) -> subprocess.Popen:
    """Run an installed node executable with a params file from config/, -p overrides and
    -r remappings (as launch_ros passes them)."""
    exe = BIN / executable
    assert exe.exists(), f"node executable {exe} is not installed"
    cmd = [str(exe), "--ros-args", "--params-file", str(REPO / "config" / params_file)]
    for k, v in (overrides or {}).items():
        cmd += ["-p", f"{k}:={v}"]
    for k, v in (remap or {}).items():
        cmd += ["-r", f"{k}:={v}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())


def names_param(names) -> str:
    """A list of names as one -p value (a string-array parameter on the command line)."""
    return "[" + ", ".join(names) + "]"


def stop(procs) -> list[str]:
    """SIGINT every process, wait, kill stragglers; return their outputs."""
    outs = []
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            out, _ = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        outs.append(out.decode(errors="replace") if out else "")
    return outs


def spin_until(node, predicate, timeout: float, procs=()) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)
        if predicate():
            return True
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"node process exited early with {p.returncode}:\n"
                                   + p.stdout.read().decode(errors="replace"))
    return False


def diag_values(msgs, name: str) -> dict:
    """Latest key/values of the diagnostic status `name` seen in `msgs`."""
    for m in reversed(msgs):
        for st in m.status:
            if st.name == name:
                return {kv.key: kv.value for kv in st.values}
    return {}


class Refusals:
    """Start-up refusals of one node executable (bad parameters), all started together at the
    first ask, so that their start-ups (imports, model loading) overlap instead of queueing:
    `result(params)` -> (return code, output) of the process started with those overrides."""

    def __init__(self, executable: str, params_file: str, param_sets):
        self.executable, self.params_file = executable, params_file
        self.param_sets = [dict(p) for p in param_sets]
        self._procs: list | None = None
        self._done: dict[int, tuple[int, str]] = {}

    def result(self, params: dict, timeout: float = 90.0) -> tuple[int, str]:
        k = self.param_sets.index(dict(params))
        if self._procs is None:
            self._procs = [start_node(self.executable, self.params_file, p) for p in self.param_sets]
        if k not in self._done:
            proc = self._procs[k]
            try:
                out, _ = proc.communicate(timeout=timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self._done[k] = (proc.returncode, out.decode(errors="replace"))
        return self._done[k]

    def close(self) -> None:
        """Stop what is still running (a node that did not refuse, or one no test asked for)."""
        for proc in self._procs or []:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def refusals_fixture(executable: str, params_file: str, cases):
    """A module-scoped pytest fixture of Refusals for `cases` [(params, message), ...]."""
    import pytest

    @pytest.fixture(scope="module")
    def refusals():
        r = Refusals(executable, params_file, [params for params, _ in cases])
        yield r
        r.close()
    return refusals
