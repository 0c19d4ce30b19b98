"""Diffusion schedules, noising, x0 estimates and batched deterministic sampling."""
