"""Training with `model.fit`: the run, its optimiser and schedule, callbacks, backups for
resuming, distribution.
"""
