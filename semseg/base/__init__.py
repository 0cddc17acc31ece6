"""The ground floor: errors, the CLI plumbing, class labels, the logits contract, crash-
safe files, CPU flags. Imports nothing else of the project.
"""
