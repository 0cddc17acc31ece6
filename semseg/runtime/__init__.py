"""Where a model runs: Keras, TFLite, ONNX Runtime, SavedModel, precision, timing and cost."""
