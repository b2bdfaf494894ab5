"""Whole jobs built from the library: the embedded demo (`demo.py`) and the reproducible studies."""
