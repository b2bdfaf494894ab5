"""lead-jax: LEAD (Latent Realignment for Human Motion Diffusion) in JAX/Flax."""

__version__ = "0.1.0"
