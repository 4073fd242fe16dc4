"""Dense descriptor networks: configs, architectures, saving and loading."""

from .config import ARCHITECTURES, ModelConfig
from .descriptor_net import DescriptorNet, FPNDecoder, Predictor, build_model
from .io import atomic_write, load_model, read_metadata, save_model, trained_steps

__all__ = ["ARCHITECTURES", "ModelConfig", "DescriptorNet", "FPNDecoder", "Predictor", "build_model",
           "save_model", "load_model", "read_metadata", "atomic_write", "trained_steps"]
