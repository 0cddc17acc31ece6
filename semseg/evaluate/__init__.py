"""Evaluation: metrics, reports and their plots."""
