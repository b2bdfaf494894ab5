"""Fixtures of the evaluation tests: the training tests' tiny dataset and hash caption encoder."""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "_train_fixtures", pathlib.Path(__file__).parents[1] / "train" / "conftest.py")
_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train)

tiny_dataset = _train.tiny_dataset
text_encoder = _train.text_encoder
HashTextEncoder = _train.HashTextEncoder
