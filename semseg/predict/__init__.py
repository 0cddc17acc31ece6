"""Prediction on images, video files and live cameras, the live view, the pictures."""
