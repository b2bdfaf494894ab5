"""Fixtures for the text-encoder tests (defined in hf_test_models.py, whose helpers tests import)."""

from hf_test_models import tiny_bert, tiny_bpe_file, tiny_clip  # noqa: F401  pylint: disable=unused-import
