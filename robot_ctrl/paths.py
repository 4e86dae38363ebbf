"""Where the package's data lives (config/, sim/, launch/) and how `package://` URIs resolve.

The same code runs from a source checkout (editable pip install), from a pip install
(data files under <prefix>/share/robot_ctrl) and from a colcon install
(install/robot_ctrl/share/robot_ctrl, found through the ament index).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "robot_ctrl"


class ResourceNotFound(FileNotFoundError):
    """A config file, URDF or package could not be found; the message names what was searched."""


def _is_share(path: Path) -> bool:
    return (path / "config" / "robots").is_dir()


@lru_cache(maxsize=None)
def share_dir() -> Path:
    """Root holding config/, sim/ and launch/.

    Order: $ROBOT_CTRL_SHARE, the source tree next to this package, <sys.prefix>/share/robot_ctrl,
    then the ament index (colcon install).
    """
    candidates = []
    if os.environ.get("ROBOT_CTRL_SHARE"):
        candidates.append(Path(os.environ["ROBOT_CTRL_SHARE"]))
    candidates.append(Path(__file__).resolve().parent.parent)
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    try:  # colcon / ROS install
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - ament index absent or package not registered
        pass
    for c in candidates:
        if _is_share(c):
            return c
    raise ResourceNotFound(
        "robot_ctrl data (config/robots) not found; searched: " + ", ".join(str(c) for c in candidates)
    )


def config_path(*parts: str) -> Path:
    return share_dir().joinpath("config", *parts)


def sim_path(*parts: str) -> Path:
    return share_dir().joinpath("sim", *parts)


def checkpoint_path(*parts: str) -> Path:
    """Committed policy checkpoints (checkpoints/, trained by documented `robot-ctrl train` runs)."""
    return share_dir().joinpath("checkpoints", *parts)


def package_share(package: str) -> Path:
    """Share directory of a ROS-style package, e.g. `example-robot-data`.

    Looks in $ROBOT_CTRL_PACKAGE_PATH (os.pathsep-separated share roots), the ament index,
    and the cmeel prefix that PyPI robotics wheels (example-robot-data) install into.
    """
    roots: list[Path] = []
    for entry in os.environ.get("ROBOT_CTRL_PACKAGE_PATH", "").split(os.pathsep):
        if entry:
            roots.append(Path(entry))
    for entry in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if entry:
            roots.append(Path(entry) / "share")
    for entry in sys.path:
        if entry:
            roots.append(Path(entry) / "cmeel.prefix" / "share")
    roots.append(Path(sys.prefix) / "share")
    for root in roots:
        if (root / package).is_dir():
            return root / package
    raise ResourceNotFound(f"package '{package}' not found in: " + ", ".join(str(r) for r in roots[:8]))


def resolve_uri(uri: str, base: Path | None = None) -> Path:
    """Resolve `package://pkg/rel`, `file://abs`, an absolute path, or a path relative to `base`."""
    if uri.startswith("package://"):
        rest = uri[len("package://"):]
        package, _, rel = rest.partition("/")
        path = package_share(package) / rel
    elif uri.startswith("file://"):
        path = Path(uri[len("file://"):])
    else:
        path = Path(os.path.expanduser(uri))
        if not path.is_absolute() and base is not None:
            path = base / path
    if not path.exists():
        raise ResourceNotFound(f"file not found: {path} (from '{uri}')")
    return path
