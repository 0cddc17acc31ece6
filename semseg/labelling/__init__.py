"""The labelling loop: CVAT pre-annotation masks, the CVAT auto-annotation function, image
selection.
"""
