"""`colcon build` of the package in a scratch workspace: executables, data files, ament index.

The package is copied (git-tracked and untracked-but-not-ignored files) into <ws>/src/robot_ctrl
and built with the colcon of this interpreter's environment, without --symlink-install, so the
install tree is what a robot gets. The build takes about a second.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "robot_ctrl"
COLCON = Path(sys.executable).parent / "colcon"
NODE_EXECUTABLES = ("sim_node", "controller_node", "demo_driver", "safety_node")
SHARE_FILES = (
    "launch/sim.launch.py",
    "launch/demo.launch.py",
    "config/sim.yaml",
    "config/controller.yaml",
    "config/demo_driver.yaml",
    "config/robots/panda.yaml",
    "config/dds/loopback.xml",
    "sim/scenes/table.xml",
    "package.xml",
)
# used when git is unavailable
TOP_LEVEL = ("package.xml", "setup.py", "setup.cfg", "resource", PACKAGE, "launch", "config", "sim", "README.md")

pytestmark = pytest.mark.skipif(not COLCON.exists(), reason=f"colcon not installed next to {sys.executable}")


def package_files() -> list[str]:
    """Files of the package relative to the repo: tracked plus untracked-but-not-ignored."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True, timeout=30,
        ).stdout.decode()
        files = sorted({f for f in out.split("\0") if f and (REPO / f).is_file()})
        if files:
            return files
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for top in TOP_LEVEL:
        p = REPO / top
        if p.is_file():
            files.append(top)
        elif p.is_dir():
            files += [str(f.relative_to(REPO)) for f in p.rglob("*")
                      if f.is_file() and "__pycache__" not in f.parts and ".egg-info" not in str(f)]
    return sorted(files)


def _env(**extra) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ROBOT_CTRL_SHARE", None)
    env["PATH"] = os.pathsep.join([str(COLCON.parent), env.get("PATH", "")])
    env.update(extra)
    return env


def _run(cmd, cwd, env, timeout=240) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n"
        f"--- stderr\n{proc.stderr[-6000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / PACKAGE
    for rel in package_files():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    # a private COLCON_HOME: no user defaults.yaml or mixins change the build
    env = _env(COLCON_HOME=str(ws / "colcon_home"))
    env.pop("COLCON_DEFAULTS_FILE", None)
    listed = _run([str(COLCON), "list", "--base-paths", "src"], ws, env, timeout=60).stdout
    build = _run([str(COLCON), "build", "--base-paths", "src", "--build-base", "B", "--install-base", "I",
                  "--event-handlers", "console_cohesion+", "desktop_notification-", "status-"], ws, env)
    return {"ws": ws, "src": src, "install": ws / "I", "list": listed, "build": build}


def test_identified_as_ament_python(workspace):
    # colcon-ros reads package.xml's <build_type>; without it colcon would treat it as plain python
    assert f"{PACKAGE}\tsrc/{PACKAGE}\t(ros.ament_python)" in workspace["list"], workspace["list"]


def test_node_executables_installed(workspace):
    lib = workspace["install"] / PACKAGE / "lib" / PACKAGE  # setup.cfg: install_scripts=$base/lib/robot_ctrl
    for name in NODE_EXECUTABLES:
        exe = lib / name
        assert exe.is_file(), f"missing {exe}; lib/{PACKAGE} has {sorted(p.name for p in lib.glob('*'))}"
        assert os.access(exe, os.X_OK), f"{exe} is not executable"


def test_share_files_installed(workspace):
    share = workspace["install"] / PACKAGE / "share" / PACKAGE
    missing = [f for f in SHARE_FILES if not (share / f).is_file()]
    assert not missing, f"not installed under {share}: {missing}"
    # setup.py mirrors launch/, config/ and sim/ whole: every source file lands in share
    for top in ("launch", "config", "sim"):
        source = {p.relative_to(workspace["src"]) for p in (workspace["src"] / top).rglob("*") if p.is_file()}
        installed = {p.relative_to(share) for p in (share / top).rglob("*") if p.is_file()}
        assert source == installed, f"{top}/: only in source {sorted(map(str, source - installed))}, " \
                                    f"only installed {sorted(map(str, installed - source))}"


def test_ament_index_marker(workspace):
    # ament_python with colcon's default isolated layout: <install>/<pkg>/share/ament_index/...
    marker = workspace["install"] / PACKAGE / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), f"missing {marker}"


def _share_dir_in_subprocess(env, cwd) -> list[str]:
    code = "import robot_ctrl, robot_ctrl.paths as p; print(p.share_dir()); print(robot_ctrl.__file__)"
    proc = _run([sys.executable, "-c", code], cwd, env, timeout=60)
    return proc.stdout.strip().splitlines()


def test_share_dir_from_env(workspace):
    share = workspace["install"] / PACKAGE / "share" / PACKAGE
    share_dir, _ = _share_dir_in_subprocess(_env(ROBOT_CTRL_SHARE=str(share)), workspace["ws"])
    assert Path(share_dir) == share


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to source setup.bash")
def test_share_dir_from_sourced_install(workspace):
    """After `source I/setup.bash`, the installed module is imported and finds its share dir
    through the ament index (no ROBOT_CTRL_SHARE)."""
    install = workspace["install"]
    code = "import robot_ctrl, robot_ctrl.paths as p; print(p.share_dir()); print(robot_ctrl.__file__)"
    script = f'. "{install}/setup.bash" && exec "{sys.executable}" -c "{code}"'
    env = _env()
    for var in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "PYTHONPATH"):
        env.pop(var, None)
    proc = _run(["bash", "-c", script], workspace["ws"], env, timeout=60)
    share_dir, module = proc.stdout.strip().splitlines()[-2:]
    assert Path(module).is_relative_to(install / PACKAGE), f"imported {module}, not the installed copy"
    assert Path(share_dir) == install / PACKAGE / "share" / PACKAGE
