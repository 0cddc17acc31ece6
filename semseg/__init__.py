"""Shared core of the toolkit: input pipeline, losses, metrics, evaluation, inference."""
