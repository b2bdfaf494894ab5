"""lead_jax.train.mesh: the ("data", "fsdp") mesh, the state layout rule, and the same training on
2 fake CPU devices whether they split the batch (data=2) or also the state (fsdp=2)."""

import os
import subprocess
import sys
import textwrap

import pytest
from jax.sharding import PartitionSpec as P

from configs import common as model_configs
from configs import train_common
from lead_jax.errors import ConfigError
from lead_jax.train import mesh as mesh_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_fsdp_spec_splits_the_largest_divisible_dimension():
  assert mesh_lib.fsdp_spec((263, 256), 2) == P(None, "fsdp")
  assert mesh_lib.fsdp_spec((1024, 256), 2) == P("fsdp")
  assert mesh_lib.fsdp_spec((64, 4, 64), 4) == P("fsdp")  # tie: the first
  assert mesh_lib.fsdp_spec((3, 6, 4), 3) == P(None, "fsdp")
  assert mesh_lib.fsdp_spec((263,), 2) == P()  # nothing divides: replicated
  assert mesh_lib.fsdp_spec((2,), 4) == P()
  assert mesh_lib.fsdp_spec((), 2) == P()
  assert mesh_lib.fsdp_spec((256, 1024), 1) == P()  # pure data parallelism


def test_make_mesh_sizes_and_errors():
  config = model_configs.base_config("humanml3d", "clip", ())
  train_common.add_training(config, num_steps=1, batch_size=4)
  mesh = mesh_lib.make_mesh(config)  # one CPU device here
  assert mesh.axis_names == ("data", "fsdp") and dict(mesh.shape) == {"data": 1, "fsdp": 1}
  config.mesh.fsdp = 2
  with pytest.raises(ConfigError, match=r"config.mesh.fsdp=2 must be >= 1 and divide the 1"):
    mesh_lib.make_mesh(config)
  config.mesh.update(data=2, fsdp=1)
  with pytest.raises(ConfigError, match=r"config.mesh.data=2 x config.mesh.fsdp=1 uses 2 devices"):
    mesh_lib.make_mesh(config)
  del config.mesh["fsdp"]
  with pytest.raises(ConfigError, match=r"config.mesh.fsdp, missing"):
    mesh_lib.make_mesh(config)


def test_fsdp_gives_the_same_training_as_data_parallel(tiny_dataset):
  # Adam eps 1e-6 (not 1e-8): attention key biases have a true gradient of 0 (softmax ignores a
  # shift), so their gradient is float rounding noise, which Adam with eps 1e-8 scales up to
  # ~1e-6 updates that differ between layouts; every other parameter agrees to < 1e-7 either way.
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {REPO!r})
      import jax, numpy as np
      from lead_jax.config_loader import load_config
      from lead_jax.models import build_vae, init_params
      from lead_jax.train import mesh as mesh_lib, stage, vae
      from lead_jax.train.step import make_train_program
      assert jax.device_count() == 2
      config = load_config({os.path.join(REPO, 'configs', 'test_vae.py')!r},
                           ["--config.data.dir={tiny_dataset}", "--config.train.ema_decay=0.5",
                            "--config.optimizer.eps=1e-6"])
      model = build_vae(config.vae)
      stream, _ = stage.make_streams(config, stage.CaptionsUnused(), with_eval=False)
      batch = next(stream)
      stream.close()
      mean, std = stage.dataset_stats(config)
      frozen = {{"mean": mean, "std": std}}
      runs = {{}}
      for data_size, fsdp in ((2, 1), (1, 2)):
        config.mesh.update(data=data_size, fsdp=fsdp)
        mesh = mesh_lib.make_mesh(config)
        prog = make_train_program(config, mesh, lambda k: init_params("vae", model, k),
                                  vae.make_loss_fn(model, config))
        state = prog.init(jax.random.key(0))
        g = mesh_lib.to_global_batch(batch, mesh)
        assert len(g["motion"].sharding.device_set) == 2
        losses = []
        for i in range(2):
          state, m = jax.block_until_ready(prog.step(state, g, frozen, jax.random.key(i)))
          losses.append(float(m["loss"]))
        split = [x for x in jax.tree.leaves((state.params, state.opt_state, state.ema_params))
                 if "fsdp" in x.sharding.spec]
        # Each split array holds half of its fsdp dimension per device.
        for x in split:
          dim = list(x.sharding.spec).index("fsdp")
          assert x.addressable_shards[0].data.shape[dim] * 2 == x.shape[dim]
        runs[fsdp] = (losses, jax.device_get((state.params, state.ema_params)), len(split))
      print("LOSSES", runs[1][0], runs[2][0], "SPLIT", runs[1][2], runs[2][2])
      assert runs[1][2] == 0 and runs[2][2] > 0
      np.testing.assert_allclose(runs[1][0], runs[2][0], rtol=1e-6, atol=1e-6)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                   runs[1][1], runs[2][1])
      print("SAME")
  """)
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        timeout=500)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert "SAME" in proc.stdout
