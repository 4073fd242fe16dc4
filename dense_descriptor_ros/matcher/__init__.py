"""A learned detector-free matcher (LoFTR-style coarse-to-fine) on the descriptor maps: model, data, losses,
training, evaluation, ONNX export and the runtime the pipeline uses."""
