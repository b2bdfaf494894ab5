"""TensorFlow side of the input pipeline (imported only when `data.backend = 'tf'`).

TFDS builders over the HumanML3D folder layout:
  humanml3d.Humanml3d       manual download: `DownloadConfig(manual_dir=<HumanML3D folder>)`
  kit_ml.KitMl              manual download: `DownloadConfig(manual_dir=<KIT-ML folder>)`
  motion_folder.MotionFolder(source_dir=...)   any `lead-jax import` output, no manual step
  motion_folder.Deepmimic()                    the embedded default (pybullet DeepMimic clips)
and `stream`, the tf.data backend of `lead_jax.data.make_train_stream` / `make_eval_stream`.

  import tensorflow_datasets as tfds
  from data_pipeline.humanml3d import Humanml3d
  builder = Humanml3d(data_dir="~/tensorflow_datasets")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir="datasets/HumanML3D"))
  ds = builder.as_dataset(split=tfds.split_for_jax_process("train"))
"""
