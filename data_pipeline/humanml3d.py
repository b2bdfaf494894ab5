"""TFDS builder `humanml3d`: the HumanML3D dataset from the folder a user already has.

  builder = lead_jax_data_pipeline.humanml3d.Humanml3d(data_dir="~/tensorflow_datasets")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir="/path/to/HumanML3D"))
  ds = builder.as_dataset(split="train")
"""

import tensorflow_datasets as tfds

from .builder_base import ManualLayoutBuilder


class Humanml3d(ManualLayoutBuilder):
  """HumanML3D (Guo et al. 2022): 263-dim features at 20 fps with captions and segment times."""

  FEATURE_DIM = 263
  FPS = 20.0
  HOMEPAGE = "https://github.com/EricGuo5513/HumanML3D"
  CITATION = """@inproceedings{Guo_2022_CVPR, title={Generating Diverse and Natural 3D Human Motions
  From Text}, author={Guo, Chuan and Zou, Shihao and Zuo, Xinxin and Wang, Sen and Ji, Wei and Li,
  Xingyu and Cheng, Li}, booktitle={CVPR}, year={2022}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  HumanML3D cannot be redistributed. Build it with the scripts of
  https://github.com/EricGuo5513/HumanML3D (AMASS + HumanAct12), then point the manual directory
  (`--manual_dir` / `DownloadConfig(manual_dir=...)`) at the resulting `HumanML3D/` folder. It must
  contain:
    new_joint_vecs/<id>.npy   features [T, 263], one per clip (including the mirrored `M<id>` clips)
    texts/<id>.txt            captions `caption#word/POS ...#start#end`, one per line
    train.txt, val.txt, test.txt   one id per line
    Mean.npy, Std.npy         normalisation statistics [263]
  (`new_joints/`, `all.txt`, `train_val.txt` and `texts.zip` may be there too; they are not read.)
  """
  VERSION = tfds.core.Version("1.0.0")
