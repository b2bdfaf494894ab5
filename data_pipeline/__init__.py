"""TensorFlow side of the input pipeline, installed as `lead_jax_data_pipeline` (imported only when
`data.backend = 'tf'`, by `lead_jax.train.inputs`); it builds on `lead_jax.data`, never the reverse.

TFDS builders over the HumanML3D folder layout:
  humanml3d.Humanml3d       manual download: `DownloadConfig(manual_dir=<HumanML3D folder>)`
  kit_ml.KitMl              manual download: `DownloadConfig(manual_dir=<KIT-ML folder>)`
  motion_folder.MotionFolder(source_dir=...)   any `lead-jax import` output, no manual step
  motion_folder.Deepmimic()                    the embedded default (pybullet DeepMimic clips)
and `stream.TF_BACKEND`, the tf.data backend `lead_jax.data.make_train_stream` / `make_eval_stream`
accept.

  import tensorflow_datasets as tfds
  from lead_jax_data_pipeline.humanml3d import Humanml3d
  builder = Humanml3d(data_dir="~/tensorflow_datasets")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir="datasets/HumanML3D"))
  ds = builder.as_dataset(split=tfds.split_for_jax_process("train"))
"""
