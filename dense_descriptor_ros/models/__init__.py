"""Dense descriptor networks: configs, architectures, saving and loading."""

from .architectures import ARCHITECTURES, Architecture, get_architecture, register_architecture
from .config import ModelConfig
from .descriptor_net import DescriptorNet, FPNDecoder, Predictor, build_model
from .io import (
    atomic_write,
    is_encoder_file,
    load_encoder_state,
    load_model,
    read_metadata,
    save_encoder,
    save_model,
    trained_steps,
)

__all__ = ["ARCHITECTURES", "Architecture", "get_architecture", "register_architecture", "ModelConfig",
           "DescriptorNet", "FPNDecoder", "Predictor", "build_model", "save_model", "load_model",
           "read_metadata", "atomic_write", "trained_steps", "save_encoder", "is_encoder_file", "load_encoder_state"]
