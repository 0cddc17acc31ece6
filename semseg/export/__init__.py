"""Export to TFLite, ONNX and SavedModel, verified against Keras."""
