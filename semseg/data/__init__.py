"""Built datasets (TFRecords) to training and evaluation batches, and their class
statistics.
"""
