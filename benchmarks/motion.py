"""Throughput of the motion representation: features -> joints and joints -> features.

JAX (one jitted call over a batch of clips) against a straightforward NumPy implementation that
loops over clips, written here from the HumanML3D formulas (reference.md §7.2-7.3; its Gaussian
filter is scipy's, as in HumanML3D). Both sides are checked to agree before timing.

Usage:
  JAX_PLATFORMS=cpu python benchmarks/motion.py [--clips 256] [--frames 196] [--repeats 3]
Reads the clips under ../shared/data/humanml3d (resampled to --frames, randomly turned and moved).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np
import scipy.ndimage

from lead_jax.motion import extract_features_batch, get_skeleton, recover_from_ric

DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humanml3d"


# ------------------------------------------------------------------ NumPy baseline (per clip)
def np_qmul(q, r):
  w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
  w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
  return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                   w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def np_qinv(q):
  return q * np.array([1, -1, -1, -1], q.dtype)


def np_qrot(q, v):
  u = q[..., 1:]
  uv = np.cross(u, v)
  return v + 2 * (q[..., :1] * uv + np.cross(u, uv))


def np_qbetween(v0, v1):
  w = np.sqrt((v0 ** 2).sum(-1, keepdims=True) * (v1 ** 2).sum(-1, keepdims=True)) + (v0 * v1).sum(-1, keepdims=True)
  q = np.concatenate([w, np.cross(v0, v1)], -1)
  return q / np.linalg.norm(q, axis=-1, keepdims=True)


def np_quat_to_cont6d(q):
  w, x, y, z = np.moveaxis(q, -1, 0)
  return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w),
                   2 * (x * y - z * w), 1 - 2 * (x * x + z * z), 2 * (y * z + x * w)], -1)


def np_unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def np_ik(joints, skel, smooth):
  l_hip, r_hip, sdr_r, sdr_l = skel.face_joint_indx  # HumanML3D's unpacking inside IK
  across = np_unit(joints[:, r_hip] - joints[:, l_hip] + joints[:, sdr_r] - joints[:, sdr_l])
  forward = np.cross([0, 1, 0], across)
  if smooth:
    forward = scipy.ndimage.gaussian_filter1d(forward, 20, axis=0, mode="nearest")
  root = np_qbetween(np_unit(forward), np.tile([0.0, 0, 1], (len(joints), 1)))
  root[0] = [1, 0, 0, 0]
  quats = np.zeros(joints.shape[:-1] + (4,))
  quats[:, 0] = root
  for chain in skel.kinematic_chain:
    r = root
    for a, b in zip(chain[:-1], chain[1:]):
      u = np.tile(skel.raw_offsets[b], (len(joints), 1))
      local = np_qmul(np_qinv(r), np_qbetween(u, np_unit(joints[:, b] - joints[:, a])))
      quats[:, b] = local
      r = np_qmul(r, local)
  return quats


def np_fk(quats, root_pos, offsets, skel):
  joints = np.zeros(quats.shape[:-1] + (3,))
  joints[:, 0] = root_pos
  for chain in skel.kinematic_chain:
    r = quats[:, 0]
    for a, b in zip(chain[:-1], chain[1:]):
      r = np_qmul(r, quats[:, b])
      joints[:, b] = np_qrot(r, np.broadcast_to(offsets[b], (len(quats), 3))) + joints[:, a]
  return joints


def np_extract_features(positions, skel, thres=0.002):
  parents = np.maximum(np.array(skel.parents), 0)
  tgt = skel.target_offsets
  src = np.linalg.norm(positions[0] - positions[0, parents], axis=-1)[:, None] * skel.raw_offsets
  leg = lambda o: np.abs(o[skel.l_idx1]).max() + np.abs(o[skel.l_idx2]).max()
  positions = np_fk(np_ik(positions, skel, False), positions[:, 0] * leg(tgt) / leg(src), tgt, skel)
  positions[:, :, 1] -= positions[:, :, 1].min()
  init = positions[0].copy()
  positions = positions - init[0] * [1, 0, 1]
  r_hip, l_hip, sdr_r, sdr_l = skel.face_joint_indx
  forward = np_unit(np.cross([0, 1, 0], np_unit(init[r_hip] - init[l_hip] + init[sdr_r] - init[sdr_l])))
  positions = np_qrot(np.broadcast_to(np_qbetween(forward, np.array([0.0, 0, 1])), positions.shape[:-1] + (4,)), positions)
  delta = positions[1:] - positions[:-1]
  speed2 = (delta ** 2).sum(-1)
  contacts = np.concatenate([speed2[:, list(skel.fid_l)], speed2[:, list(skel.fid_r)]], -1) < thres
  quats = np_ik(positions, skel, True)
  r_rot = quats[:, 0]
  vel = np_qrot(r_rot[1:], positions[1:, 0] - positions[:-1, 0])
  r_vel = np_qmul(r_rot[1:], np_qinv(r_rot[:-1]))
  ric = positions - positions[:, :1] * [1, 0, 1]
  ric = np_qrot(np.repeat(r_rot[:, None], ric.shape[1], 1), ric)
  local_vel = np_qrot(np.repeat(r_rot[:-1, None], delta.shape[1], 1), delta)
  steps = len(delta)
  return np.concatenate([np.arcsin(r_vel[:, 2:3]), vel[:, [0, 2]], ric[:-1, 0, 1:2],
                         ric[:-1, 1:].reshape(steps, -1), np_quat_to_cont6d(quats[:-1, 1:]).reshape(steps, -1),
                         local_vel.reshape(steps, -1), contacts.astype(np.float32)], -1)


def np_recover_from_ric(x, joints_num):
  angle = np.concatenate([[0.0], np.cumsum(x[:-1, 0])])
  quat = np.stack([np.cos(angle), 0 * angle, np.sin(angle), 0 * angle], -1)
  vel = np.zeros((len(x), 3))
  vel[1:, [0, 2]] = x[:-1, 1:3]
  pos = np.cumsum(np_qrot(np_qinv(quat), vel), 0)
  pos[:, 1] = x[:, 3]
  local = x[:, 4:4 + (joints_num - 1) * 3].reshape(len(x), joints_num - 1, 3)
  world = np_qrot(np.repeat(np_qinv(quat)[:, None], joints_num - 1, 1), local) + (pos * [1, 0, 1])[:, None]
  return np.concatenate([pos[:, None], world], 1)


# ------------------------------------------------------------------ data and timing
def make_clips(num: int, frames: int, seed: int = 0) -> np.ndarray:
  """[num, frames, 22, 3] from the shipped clips: resampled in time, turned and moved at random."""
  rng = np.random.default_rng(seed)
  sources = [np.load(p) for p in sorted((DATA / "new_joints").glob("*.npy"))]
  if not sources:
    raise SystemExit(f"no clips under {DATA}/new_joints (needs ../shared/data)")
  out = np.empty((num, frames, 22, 3), np.float32)
  for i in range(num):
    src = sources[i % len(sources)]
    t = np.linspace(0, len(src) - 1, frames)
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, len(src) - 1)
    clip = src[lo] + (t - lo)[:, None, None] * (src[hi] - src[lo])
    a = rng.uniform(-np.pi, np.pi)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    out[i] = clip @ turn.T * rng.uniform(0.9, 1.1) + [rng.uniform(-2, 2), 0.0, rng.uniform(-2, 2)]
  return out


def best_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--clips", type=int, default=256)
  parser.add_argument("--frames", type=int, default=196)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--numpy-clips", type=int, default=32,
                      help="clips timed for the NumPy loop (its time is per clip, so a subset suffices)")
  args = parser.parse_args()
  skel = get_skeleton("t2m")
  joints = make_clips(args.clips, args.frames)
  sub = joints[:args.numpy_clips]

  t0 = time.perf_counter()
  feats = np.asarray(extract_features_batch(joints))
  compile_extract = time.perf_counter() - t0
  t0 = time.perf_counter()
  np.asarray(recover_from_ric(feats, 22))
  compile_recover = time.perf_counter() - t0

  np_feats = np.stack([np_extract_features(j.astype(np.float64), skel) for j in sub[:4]])
  np_joints = np.stack([np_recover_from_ric(f.astype(np.float64), 22) for f in feats[:4]])
  err_extract = np.abs(np_feats - feats[:4]).max()
  err_recover = np.abs(np_joints - np.asarray(recover_from_ric(feats[:4], 22))).max()

  # JAX inputs already on the device (as in a pipeline); the NumPy loop works in host memory.
  joints_dev, feats_dev = jax.device_put(joints), jax.device_put(feats)
  jax_extract = best_time(lambda: extract_features_batch(joints_dev), args.repeats)
  jax_recover = best_time(lambda: recover_from_ric(feats_dev, 22), args.repeats)
  np_extract = best_time(lambda: [np_extract_features(j, skel) for j in sub], args.repeats) * args.clips / len(sub)
  sub_feats = feats[:args.numpy_clips]
  np_recover = best_time(lambda: [np_recover_from_ric(f, 22) for f in sub_feats], args.repeats) * args.clips / len(sub)

  frames_in = args.clips * args.frames
  print(f"motion representation, {args.clips} clips x {args.frames} frames, device {jax.devices()[0].platform}, "
        f"best of {args.repeats}")
  print(f"{'direction':<22}{'impl':<28}{'seconds':>10}{'frames/s':>14}{'speed-up':>10}{'max |diff|':>12}")
  rows = [("joints -> features", np_extract, jax_extract, err_extract, compile_extract),
          ("features -> joints", np_recover, jax_recover, err_recover, compile_recover)]
  for name, t_np, t_jax, err, t_compile in rows:
    print(f"{name:<22}{'NumPy loop over clips':<28}{t_np:>10.3f}{frames_in / t_np:>14,.0f}{'1.0x':>10}{'':>12}")
    print(f"{'':<22}{'JAX jit (batched)':<28}{t_jax:>10.3f}{frames_in / t_jax:>14,.0f}{t_np / t_jax:>9.1f}x{err:>12.1e}")
    print(f"{'':<22}{'  (first call, compile)':<28}{t_compile:>10.3f}")


if __name__ == "__main__":
  main()
