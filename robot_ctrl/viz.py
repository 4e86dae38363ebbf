"""Plots and animations of runs (ROS-free): tracking plots (matplotlib) and MuJoCo GIFs.

Headless rendering: MuJoCo picks its OpenGL backend from MUJOCO_GL when `mujoco` is first
imported. This module sets MUJOCO_GL=egl if it is unset, before importing mujoco. If mujoco
was imported earlier (robot_ctrl.sim imports it) with another backend than MUJOCO_GL now
names, render_gif re-selects the backend MUJOCO_GL names once before rendering (it reloads
mujoco's gl_context module), so the import order does not matter.
"""
from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import importlib  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robot_ctrl.model.robot import RobotModel  # noqa: E402
from robot_ctrl.sim.world import build_world, robot_prefix  # noqa: E402


class RenderUnavailable(RuntimeError):
    """No OpenGL context could be created for offscreen rendering (the message says why)."""


# -- tracking plot -------------------------------------------------------------------------
def plot_tracking(t, q, q_ref, joint_names: Sequence[str], path: str | Path,
                  title: str = "Joint tracking", dpi: int = 100) -> Path:
    """Plot actual vs reference per joint, plus the tracking error norm; save a PNG.

    t: [N] seconds; q, q_ref: [N, n] with columns in `joint_names` order (rad, or m for
    prismatic joints). NaNs (values a message did not carry) leave gaps. Draws on a bare
    matplotlib Figure (Agg canvas), so pyplot's global backend and figures are left alone.
    Returns the written path.
    """
    from matplotlib.figure import Figure

    t = np.asarray(t, dtype=float).reshape(-1)
    q = np.asarray(q, dtype=float)
    q_ref = np.asarray(q_ref, dtype=float)
    names = list(joint_names)
    n = len(names)
    if q.shape != (t.size, n) or q_ref.shape != (t.size, n):
        raise ValueError(f"expected q and q_ref of shape [{t.size}, {n}] (t: {t.size} samples, "
                         f"{n} joint names), got {q.shape} and {q_ref.shape}")

    ncols = min(3, n) if n else 1
    nrows = -(-n // ncols)
    fig = Figure(figsize=(4.0 * ncols, 2.2 * (nrows + 1) + 0.6), dpi=dpi)
    grid = fig.add_gridspec(nrows + 1, ncols)
    for j, name in enumerate(names):
        ax = fig.add_subplot(grid[j // ncols, j % ncols])
        ax.plot(t, q_ref[:, j], "--", color="tab:orange", lw=1.2, label="reference")
        ax.plot(t, q[:, j], color="tab:blue", lw=1.0, label="actual")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(fontsize=7, loc="best")
        if j % ncols == 0:
            ax.set_ylabel("position", fontsize=8)
    ax = fig.add_subplot(grid[nrows, :])
    err = np.linalg.norm(q - q_ref, axis=1)
    ax.plot(t, err, color="tab:red", lw=1.0)
    ax.set_xlabel("time [s]", fontsize=8)
    ax.set_ylabel("|q - q_ref|", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    finite = err[np.isfinite(err)]
    if finite.size:
        ax.set_title(f"tracking error norm (max {finite.max():.3g}, "
                     f"RMS {np.sqrt(np.mean(finite**2)):.3g})", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# -- GIF -----------------------------------------------------------------------------------
_GL_LOCK = threading.Lock()
_gl_checked = False


def _select_gl_backend() -> None:
    """Make mujoco's Renderer use the backend MUJOCO_GL names, even if mujoco was imported first."""
    global _gl_checked
    with _GL_LOCK:
        if _gl_checked:
            return
        _gl_checked = True
        try:
            from mujoco.rendering.classic import gl_context
        except ImportError:  # older mujoco: the backend is fixed at import
            return
        wanted = os.environ.get("MUJOCO_GL", "").lower().strip()
        if getattr(gl_context, "_MUJOCO_GL", wanted) != wanted:
            importlib.reload(gl_context)


def _make_renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    _select_gl_backend()
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except ValueError:  # image larger than the offscreen buffer: a usage error, not a GL one
        raise
    except Exception as exc:  # noqa: BLE001 - FatalError, ImportError, EGL/GLFW errors
        try:
            from mujoco.rendering.classic import gl_context
            backend = getattr(gl_context.GLContext, "__module__", "?")
        except ImportError:
            backend = "?"
        raise RenderUnavailable(
            f"MuJoCo offscreen rendering is unavailable (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}, "
            f"GL context from {backend}): {type(exc).__name__}: {exc}. "
            "Headless machines need MUJOCO_GL=egl (libEGL, GPU or Mesa) or MUJOCO_GL=osmesa (libOSMesa) "
            "set before mujoco is imported."
        ) from exc


def render_frames(robot: RobotModel, qs, size: tuple[int, int] = (320, 240), scene: str | None = "table",
                  camera: str | int | None = "overview", every: int = 1, objects: dict | None = None,
                  sites: dict | None = None, bodies: dict | None = None) -> np.ndarray:
    """Render the robot at each configuration qs[::every] (rows in robot.joint_names order).

    Returns uint8 frames [F, height, width, 3]. camera: a camera name or id of the scene,
    or None for MuJoCo's default free camera. objects: {free body: [N, 7] poses (position,
    quaternion w x y z)} moved along with the robot; sites / bodies: {name: position} set once
    (a task's target marker, hole fixture).
    """
    qs = np.asarray(qs, dtype=float)
    if qs.ndim != 2 or qs.shape[1] != robot.n:
        raise ValueError(f"qs must have shape [N, {robot.n}] ({', '.join(robot.joint_names)}), got {qs.shape}")
    if int(every) < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if len(qs) == 0:
        raise ValueError("no configurations to render")
    if not np.all(np.isfinite(qs)):
        raise ValueError("qs holds NaN or Inf (a joint missing from a logged message?)")
    width, height = (int(s) for s in size)
    model = build_world(robot, scene, "position")
    data = mujoco.MjData(model)
    prefix = robot_prefix(model)
    qadr = np.array([model.jnt_qposadr[model.joint(prefix + j).id] for j in robot.joint_names], dtype=int)
    if isinstance(camera, str):
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam_id < 0:
            cams = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"no camera '{camera}' in scene '{scene}' (cameras: {', '.join(cams) or 'none'})")
    else:
        cam_id = -1 if camera is None else int(camera)

    frames = qs[:: int(every)]
    obj_adr = {}
    for name, poses in (objects or {}).items():
        poses = np.asarray(poses, dtype=float)
        if poses.shape != (len(qs), 7):
            raise ValueError(f"poses of '{name}' must have shape [{len(qs)}, 7], got {poses.shape}")
        obj_adr[name] = (int(model.jnt_qposadr[model.body(name).jntadr[0]]), poses[:: int(every)])
    for name, pos in (sites or {}).items():
        model.site_pos[model.site(name).id, :len(pos)] = pos
    for name, pos in (bodies or {}).items():
        model.body_pos[model.body(name).id, :len(pos)] = pos
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    renderer = _make_renderer(model, width, height)
    try:
        for k, q in enumerate(frames):
            data.qpos[qadr] = q
            for adr, poses in obj_adr.values():
                data.qpos[adr:adr + 7] = poses[k]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=cam_id)
            out[k] = renderer.render()
    finally:
        renderer.close()
    return out


def _shared_palette(frames: np.ndarray, colors: int):
    """One palette (PIL 'P' image) for all frames, from a few frames spread over the clip."""
    from PIL import Image

    picks = frames[np.linspace(0, len(frames) - 1, num=min(len(frames), 8)).astype(int)]
    strip = Image.fromarray(np.concatenate(list(picks), axis=0))
    # Max-coverage keeps small saturated regions (the red block, the green target) that median
    # cut, which weights colours by pixel count, folds into the large grey and wood areas.
    return strip.quantize(colors=colors, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)


def render_gif(robot: RobotModel, qs, path: str | Path, fps: float = 15, size: tuple[int, int] = (320, 240),
               scene: str | None = "table", camera: str | int | None = "overview", every: int = 1,
               colors: int = 256, **scene_state) -> Path:
    """Animate the robot through configurations qs[::every] into a looping GIF at `fps`.

    qs: [N, n] joint positions in robot.joint_names order (e.g. logged at the control rate:
    choose `every` so that rate / every ~ fps). Frames are quantized to one shared palette
    of `colors` colors without dithering, so the static background is identical from frame
    to frame and the GIF stores little more than the moving robot (10 s of the Panda on the
    table at 320x240, 15 fps: ~0.4 MB; without the shared palette ~1 MB). Pillow folds
    identical consecutive frames into one longer frame, so a still robot yields fewer frames
    at unchanged timing. Software EGL renders ~15 frames/s at 320x240.

    Raises RenderUnavailable if no OpenGL context can be made.
    """
    import imageio.v3 as iio
    from PIL import Image

    frames = render_frames(robot, qs, size=size, scene=scene, camera=camera, every=every, **scene_state)
    palette = _shared_palette(frames, colors)
    quantized = np.stack([
        np.asarray(Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB"))
        for f in frames
    ])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration_ms = 1000.0 / float(fps)
    iio.imwrite(path, quantized, extension=".gif", plugin="pillow", duration=duration_ms, loop=0)
    return path
