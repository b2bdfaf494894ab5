"""Stick-figure rendering of motions with matplotlib: animations (MP4 / GIF) and key-frame strips.

Each motion is drawn in its own 3D panel (side by side, one caption each): the kinematic chains of
the skeleton (`get_skeleton(...).kinematic_chain`, right side red, left side blue, spine black),
a ground plane at y = 0 and the root's trajectory on the ground. Y is up; plotted as (x, -z, y) so
nothing is mirrored. Animations are written as MP4 when `ffmpeg` is on PATH and the path
ends in `.mp4`, else as GIF (pillow writer; an `.mp4` request then becomes `.gif`).

Inputs of `load_motion`: joints [T, J, 3] or features [T, D] (joints via `recover_from_ric`,
de-normalised first when mean/std are given).

Example:
  render_animation([joints], "walk.gif", ["a person walks forward."], fps=20)
  render_strip([joints_a, joints_b], "strip.png", ["a", "b"], num_frames=8)
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Sequence

import numpy as np

from lead_jax.errors import InputError
from lead_jax.io.arrays import load_npy
from lead_jax.motion.features import features_dim, recover_from_ric
from lead_jax.motion.skeleton import skeleton_for_joints

_CHAIN_COLORS = ("#d62728", "#1f77b4", "#222222", "#ff7f0e", "#17becf")  # t2m: R leg, L leg, spine, R arm, L arm


def _skeleton(joints_num: int):
  return skeleton_for_joints(joints_num)


def load_motion(path: str | pathlib.Path, mean: np.ndarray | None = None,
                std: np.ndarray | None = None) -> np.ndarray:
  """A `.npy` of joints [T, J, 3] or features [T, D] -> joints [T, J, 3] float32."""
  return as_joints(load_npy(path), mean, std, source=str(path))


def as_joints(data: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None,
              source: str = "motion") -> np.ndarray:
  """joints [T, J, 3] (returned as is) or features [T, D] (recovered) -> joints [T, J, 3]."""
  data = np.asarray(data, np.float32)
  if data.ndim == 3 and data.shape[-1] == 3 and data.shape[1] in (21, 22):
    joints = data
  elif data.ndim == 2 and data.shape[-1] in (features_dim(22), features_dim(21)):
    joints_num = 22 if data.shape[-1] == features_dim(22) else 21
    if (mean is None) != (std is None):
      raise InputError(f"{source}: give both mean and std, or neither")
    if mean is not None:
      mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
      if mean.shape != (data.shape[-1],) or std.shape != (data.shape[-1],):
        raise InputError(f"{source}: mean/std must have shape ({data.shape[-1]},), found "
                         f"{mean.shape} and {std.shape}")
      data = data * std + mean
    joints = np.asarray(recover_from_ric(data, joints_num), np.float32)
  else:
    raise InputError(f"{source}: expected joints [T, 22, 3] or features [T, 263] "
                     f"(KIT: [T, 21, 3] / [T, 251]), found shape {data.shape}")
  if joints.shape[0] < 1 or not np.isfinite(joints).all():
    raise InputError(f"{source}: empty motion or NaN/inf values")
  return joints


def _check_list(joints_list: Sequence[np.ndarray], captions: Sequence[str] | None):
  if not joints_list:
    raise InputError("render: no motion given")
  joints_list = [np.asarray(j, np.float32) for j in joints_list]
  for i, j in enumerate(joints_list):
    if j.ndim != 3 or j.shape[-1] != 3 or j.shape[1] not in (21, 22) or j.shape[0] < 1:
      raise InputError(f"render: motion {i} must be joints [T, 22 or 21, 3], found {j.shape}")
  captions = list(captions or [])
  if len(captions) > len(joints_list):
    raise InputError(f"render: {len(captions)} captions for {len(joints_list)} motions")
  captions += [""] * (len(joints_list) - len(captions))
  return joints_list, captions


def _figure(count: int, rows: int = 1, size: float = 3.2):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig = plt.figure(figsize=(size * count, size * rows + 0.3), dpi=80)
  return plt, fig


def _to_plot(joints: np.ndarray) -> np.ndarray:
  """World (x, y up, z) -> matplotlib (X, Y, Z up) = (x, -z, y): a rotation, so no mirroring."""
  return np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], axis=-1)


FOLLOW_EXTENT_M = 3.0  # clips travelling further than this are framed around the current root


def _follows(points: np.ndarray) -> bool:
  """True when the clip's horizontal extent is too large for one fixed frame (the figure would
  shrink to a dot); the view then follows the root."""
  extent = points[..., :2].max(axis=(0, 1)) - points[..., :2].min(axis=(0, 1))
  return bool(np.max(extent) > FOLLOW_EXTENT_M)


def _set_view(ax, points: np.ndarray, frame: int | None) -> list:
  """Limits and ground plane: around the whole clip (`frame` None) or around frame `frame`'s
  root (following view). Returns the ground artist so a following animation can redraw it."""
  window = points if frame is None else points[frame:frame + 1]
  lo, hi = window.min(axis=(0, 1)), window.max(axis=(0, 1))
  center = 0.5 * (lo + hi)
  radius = 0.5 * max(float(np.max(hi - lo)), 1.0) + 0.1
  if frame is not None:
    center[:2] = points[frame, 0, :2]
    radius = max(radius, 1.2)
  ax.set_xlim(center[0] - radius, center[0] + radius)
  ax.set_ylim(center[1] - radius, center[1] + radius)
  ax.set_zlim(0.0, 2.0 * radius)
  gx, gy = np.meshgrid(center[0] + np.array([-radius, radius]),
                       center[1] + np.array([-radius, radius]))
  return [ax.plot_surface(gx, gy, np.zeros_like(gx), color="#cccccc", alpha=0.4, shade=False)]


def _setup_axis(ax, points: np.ndarray, title: str, frame: int | None = None) -> list:
  """Camera, title and view of plot points [T, J, 3] (see `_set_view`)."""
  ax.view_init(elev=15, azim=-60)
  ax.set_box_aspect((1, 1, 1), zoom=1.6)
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=9, wrap=True)
  return _set_view(ax, points, frame)


def _draw_pose(ax, points: np.ndarray, frame: int, chains) -> list:
  """Draws frame `frame` of plot points [T, J, 3] and the root trajectory up to it."""
  artists = []
  trail = points[: frame + 1, 0]
  artists += ax.plot(trail[:, 0], trail[:, 1], np.zeros(len(trail)), color="#2ca02c", lw=1.0)
  pose = points[frame]
  for c, chain in enumerate(chains):
    pts = pose[list(chain)]
    artists += ax.plot(pts[:, 0], pts[:, 1], pts[:, 2], color=_CHAIN_COLORS[c % len(_CHAIN_COLORS)],
                       lw=2.0, marker="o", markersize=2)
  return artists


def render_animation(joints_list: Sequence[np.ndarray], path: str | pathlib.Path,
                     captions: Sequence[str] | None = None, fps: float = 20.0) -> pathlib.Path:
  """Animates motions [T_i, J, 3] side by side; frames = the longest motion (shorter ones hold
  their last pose). Writes MP4 (ffmpeg on PATH) or GIF; returns the path written."""
  from matplotlib import animation  # pylint: disable=g-import-not-at-top
  joints_list, captions = _check_list(joints_list, captions)
  points_list = [_to_plot(j) for j in joints_list]
  if fps <= 0:
    raise InputError(f"render: fps must be positive, found {fps}")
  path = pathlib.Path(path)
  use_mp4 = path.suffix.lower() == ".mp4" and shutil.which("ffmpeg") is not None
  if path.suffix.lower() not in (".gif", ".mp4"):
    raise InputError(f"render: animation path must end in .mp4 or .gif, found {path.name}")
  if not use_mp4:
    path = path.with_suffix(".gif")
  path.parent.mkdir(parents=True, exist_ok=True)

  plt, fig = _figure(len(joints_list))
  axes = [fig.add_subplot(1, len(joints_list), i + 1, projection="3d")
          for i in range(len(joints_list))]
  chains = [_skeleton(j.shape[1]).kinematic_chain for j in joints_list]
  follow = [_follows(points) for points in points_list]
  for ax, points, caption, f in zip(axes, points_list, captions, follow):
    ground = _setup_axis(ax, points, caption, 0 if f else None)
    if f:  # a following view redraws its ground plane every frame
      for artist in ground:
        artist.remove()
  num_frames = max(j.shape[0] for j in joints_list)
  drawn: list = []

  def update(t: int):
    for artist in drawn:
      artist.remove()
    drawn.clear()
    for ax, points, chain, f in zip(axes, points_list, chains, follow):
      frame = min(t, points.shape[0] - 1)
      if f:
        drawn.extend(_set_view(ax, points, frame))
      drawn.extend(_draw_pose(ax, points, frame, chain))
    return drawn

  anim = animation.FuncAnimation(fig, update, frames=num_frames, interval=1000.0 / fps, blit=False)
  writer = animation.FFMpegWriter(fps=fps) if use_mp4 else animation.PillowWriter(fps=fps)
  anim.save(str(path), writer=writer)
  plt.close(fig)
  return path


def render_strip(joints_list: Sequence[np.ndarray], path: str | pathlib.Path,
                 captions: Sequence[str] | None = None, num_frames: int = 8) -> pathlib.Path:
  """A PNG grid: one row per motion, `num_frames` evenly spaced key frames per row."""
  joints_list, captions = _check_list(joints_list, captions)
  if num_frames < 1:
    raise InputError(f"render: num_frames must be >= 1, found {num_frames}")
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  plt, fig = _figure(num_frames, rows=len(joints_list), size=2.2)
  for row, (joints, caption) in enumerate(zip(joints_list, captions)):
    chain = _skeleton(joints.shape[1]).kinematic_chain
    points = _to_plot(joints)
    frames = np.linspace(0, joints.shape[0] - 1, num_frames).round().astype(int)
    for col, t in enumerate(frames):
      ax = fig.add_subplot(len(joints_list), num_frames, row * num_frames + col + 1,
                           projection="3d")
      _setup_axis(ax, points, f"{caption}\nframe {t}" if col == 0 and caption else f"frame {t}",
                  int(t) if _follows(points) else None)
      _draw_pose(ax, points, int(t), chain)
  fig.savefig(str(path))
  plt.close(fig)
  return path
