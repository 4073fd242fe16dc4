"""Deployment engine: ONNX export with metadata and one `DescriptorExtractor` over every backend.

Free of ROS: the node, the rosbag tools and the evaluation all call this code. onnx/onnxruntime are
imported only when an export or an ONNX Runtime session is asked for.
"""

from .export import (
    FP32_TOLERANCE,
    ModelInfo,
    check_parity,
    export_onnx,
    model_fingerprint,
    model_info,
    read_model_file,
    read_onnx_info,
)
from .extractor import (
    BackendFallbackError,
    BackendFallbackWarning,
    DescriptorExtractor,
    DescriptorMap,
    ExtractorConfig,
    OrtBackend,
    TorchBackend,
)

__all__ = ["FP32_TOLERANCE", "ModelInfo", "check_parity", "export_onnx", "model_fingerprint", "model_info",
           "read_model_file", "read_onnx_info", "BackendFallbackError", "BackendFallbackWarning",
           "DescriptorExtractor", "DescriptorMap", "ExtractorConfig", "OrtBackend", "TorchBackend"]
