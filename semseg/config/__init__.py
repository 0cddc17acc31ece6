"""A run's settings: `RunConfig` (train.py's flags, recipes, config.json), the work dir and
dataset lookup, the table of published weights.
"""
