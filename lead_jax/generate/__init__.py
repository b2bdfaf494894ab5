"""Generation from trained stages: `Pipeline` (load, generate), the jitted synthesis program
(`synthesis`) and the prompt checks and shape buckets (`prompts`)."""

from lead_jax.generate.pipeline import Pipeline

__all__ = ["Pipeline"]
