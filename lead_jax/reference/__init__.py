"""PyTorch re-statements of reference models (need `torch`), for parity tests and baselines."""
