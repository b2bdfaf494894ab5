"""TFDS builder `kit_ml`: the KIT Motion-Language dataset in the HumanML3D layout.

  builder = lead_jax_data_pipeline.kit_ml.KitMl(data_dir="~/tensorflow_datasets")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir="/path/to/KIT-ML"))
"""

import tensorflow_datasets as tfds

from .builder_base import ManualLayoutBuilder


class KitMl(ManualLayoutBuilder):
  """KIT-ML (Plappert et al. 2016) as processed by HumanML3D: 251-dim features at 12.5 fps."""

  FEATURE_DIM = 251
  FPS = 12.5
  HOMEPAGE = "https://github.com/EricGuo5513/HumanML3D"
  CITATION = """@article{Plappert2016, title={The {KIT} Motion-Language Dataset}, author={Plappert,
  Matthias and Mandery, Christian and Asfour, Tamim}, journal={Big Data}, year={2016}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  KIT-ML cannot be redistributed. Obtain the processed `KIT-ML/` folder as described in
  https://github.com/EricGuo5513/HumanML3D ("KIT-ML Dataset"), unzip `texts.zip`, and point the
  manual directory (`--manual_dir` / `DownloadConfig(manual_dir=...)`) at it. It must contain:
    new_joint_vecs/<id>.npy   features [T, 251], one per clip (including mirrored `M<id>` clips)
    texts/<id>.txt            captions `caption#word/POS ...#start#end`, one per line
    train.txt, val.txt, test.txt   one id per line
    Mean.npy, Std.npy         normalisation statistics [251]
  """
  VERSION = tfds.core.Version("1.0.0")
