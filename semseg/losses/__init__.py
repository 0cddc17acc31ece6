"""The `--loss` grammar and the losses it names."""
