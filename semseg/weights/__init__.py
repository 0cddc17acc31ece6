"""Pretrained and published weights: reading checkpoints safely, MMSeg's and the authors'
key names, downloads, fine-tuning from a run.
"""
