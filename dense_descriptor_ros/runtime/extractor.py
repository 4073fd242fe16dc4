"""`DescriptorExtractor`: one API over every backend, NumPy in, NumPy out.

    extractor = DescriptorExtractor.load("model.onnx", ExtractorConfig(providers=("cuda", "cpu")))
    dmap = extractor(rgb)            # rgb: (H, W, 3) uint8 -> dmap.descriptors: (h, w, D)

Preprocessing (optional resize to the processing resolution, uint8 -> float / 255, HWC -> NCHW) and
postprocessing (optional bilinear upsampling, HWC layout, dtype) are the same code for every backend;
the backends only run the network. ONNX Runtime silently falls back to CPU when a GPU provider
cannot load (missing CUDA/cuDNN/TensorRT libraries); the extractor compares the providers the
session really uses with the ones asked for and warns or refuses (`on_fallback`).
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..descriptor_map import DescriptorMap  # re-exported: it lived here first
from ..models import DescriptorNet
from .export import INPUT_NAME, OUTPUT_NAME, ModelInfo, metadata_to_info, model_info, read_model_file, with_upsample

PROVIDER_ALIASES = {"tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
                    "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


class BackendFallbackError(RuntimeError):
    """The backend could not use the device/provider asked for and `on_fallback` is "error".

    `reason` is the message without the hint, for callers whose users know the setting by another name
    (the node's `require_device`)."""

    def __init__(self, reason: str, hint: str = "set on_fallback='warn' to run anyway") -> None:
        super().__init__(f"{reason} ({hint})")
        self.reason = reason


class BackendFallbackWarning(RuntimeWarning):
    """The backend runs on a slower device/provider than asked for (`on_fallback` is "warn")."""


@dataclass
class ExtractorConfig:
    # "auto" picks from the model file: .onnx -> onnxruntime, .safetensors/.pt -> torch.
    backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    # torch: "cpu", "cuda" or "cuda:N".
    device: str = "cpu"
    # torch: compute precision ("fp16"/"bf16" cast the weights; meant for CUDA). onnxruntime: "fp16"
    # enables TensorRT's fp16 mode or requires an fp16 export; the graph's own precision otherwise.
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    # torch: channels_last memory format (faster convolutions on GPUs and on oneDNN).
    channels_last: bool = True
    # onnxruntime: execution providers in order of preference ("tensorrt", "cuda", "cpu" or full names).
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    # What to do when a GPU provider/device cannot be used and the backend falls back to CPU.
    on_fallback: Literal["error", "warn"] = "error"
    # Intra-op threads (ONNX Runtime session / torch.set_num_threads, process-wide); 0 = library default.
    num_threads: int = 0
    # onnxruntime: let idle worker threads spin. Turn off when other processes share the cores (a
    # robot's computer): spinning threads then wait for a core; measured lite 640x480, 2 threads,
    # 2 busy cores: 51 ms spinning, 27 ms not.
    allow_spinning: bool = True
    # Processing resolution (width, height) the image is resized to; (0, 0) = the input's own size.
    resolution: tuple[int, int] = (0, 0)
    # Output stride relative to the processing resolution: 0 = the network's native stride (small
    # maps, what matching wants), 1 = bilinearly upsampled to every pixel.
    output_stride: int = 0
    # dtype of the returned descriptors.
    output_dtype: Literal["float32", "float16"] = "float32"
    # Runs on a black image at load time, so the first real frame is not slow (CUDA/TensorRT init).
    warmup_iters: int = 2
    # (width, height) of the warm-up image when `resolution` is (0, 0).
    warmup_size: tuple[int, int] = (640, 480)
    # onnxruntime + TensorRT: directory for cached engines ("" = no cache; engines take minutes to build).
    trt_cache_dir: str = ""

    def __post_init__(self) -> None:
        if self.output_stride not in (0, 1):
            raise ValueError(f"output_stride must be 0 (native) or 1 (upsampled), got {self.output_stride}")
        if self.num_threads < 0 or self.warmup_iters < 0:
            raise ValueError("num_threads and warmup_iters must be >= 0")
        if len(self.resolution) != 2 or min(self.resolution) < 0 or (0 in self.resolution
                                                                    and any(self.resolution)):
            raise ValueError(f"resolution must be (width, height) > 0 or (0, 0), got {self.resolution}")
        if not self.providers:
            raise ValueError("providers must name at least one ONNX Runtime execution provider")


class Backend(Protocol):
    """Runs the network: float32 (1, 3, H, W) in [0, 1] -> (1, D, h, w) torch tensor (any device)."""

    name: str
    # What it really runs on ("cuda:0 fp16 channels_last", "CUDAExecutionProvider, CPU...").
    active: str
    # The fallback message if it runs on something slower than asked, else None.
    fallback: str | None

    def run(self, x: np.ndarray) -> torch.Tensor: ...


def _fallback(msg: str, on_fallback: str) -> str:
    if on_fallback == "error":
        raise BackendFallbackError(msg)
    warnings.warn(msg, BackendFallbackWarning, stacklevel=3)
    return msg


class TorchBackend:
    """Eager PyTorch: CPU, or CUDA with fp16/bf16 weights and channels_last."""

    name = "torch"

    def __init__(self, model: DescriptorNet, device: str = "cpu", precision: str = "fp32",
                 channels_last: bool = True, on_fallback: str = "error") -> None:
        self.fallback: str | None = None
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            self.fallback = _fallback(f"torch: device {device!r} asked for but CUDA is not available "
                                      f"(torch {torch.__version__}); running on CPU in fp32", on_fallback)
            dev, precision = torch.device("cpu"), "fp32"
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.device = dev
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Native-stride graph: upsampling (if asked) is shared postprocessing, same for every backend.
        net = with_upsample(model, False)
        if net is model:
            net = copy.deepcopy(model)  # never cast or move the caller's model
        self.model = net.to(device=dev, dtype=self.dtype, memory_format=self.memory_format).eval()
        self.active = f"{dev} {precision}" + (" channels_last" if channels_last else "")

    def run(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x).to(self.device, non_blocking=True)
        t = t.to(dtype=self.dtype, memory_format=self.memory_format)
        with torch.inference_mode():
            return self.model(t)


class OrtBackend:
    """ONNX Runtime session with the providers in the order asked, and fallback detection."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 num_threads: int = 0, on_fallback: str = "error", trt_fp16: bool = False,
                 trt_cache_dir: str = "", allow_spinning: bool = True) -> None:
        import onnxruntime as ort

        wanted = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.inter_op_num_threads = 1
        if num_threads > 0:
            opts.intra_op_num_threads = num_threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        provider_args: list = []
        for p in wanted:
            if p == "TensorrtExecutionProvider":
                o = {"trt_fp16_enable": trt_fp16}
                if trt_cache_dir:
                    o.update(trt_engine_cache_enable=True, trt_engine_cache_path=trt_cache_dir)
                provider_args.append((p, o))
            else:
                provider_args.append(p)
        with warnings.catch_warnings():
            # ORT's own "not in available provider names" UserWarning; ours below is more specific.
            warnings.filterwarnings("ignore", message=".*not in available provider names.*")
            self.session = ort.InferenceSession(str(path), opts, providers=provider_args)
        got = self.session.get_providers()
        self.active = ", ".join(got)
        missing = [p for p in wanted if p not in got]
        self.fallback = None
        if missing:
            self.fallback = _fallback(
                f"onnxruntime: could not load {', '.join(missing)} (this onnxruntime offers "
                f"{', '.join(ort.get_available_providers())}; check the GPU package and CUDA/cuDNN/TensorRT "
                f"libraries); running on {self.active}", on_fallback)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])


@dataclass
class _Timing:
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0


class DescriptorExtractor:
    """Dense descriptors of RGB uint8 images with any backend (see module docstring).

    Attributes:
        info: ModelInfo (name, version, model_id, D, native stride, ...).
        backend: the backend object (`.name`, `.active`, `.fallback`).
        timing: preprocess/inference/postprocess milliseconds of the last call.
    """

    def __init__(self, backend: Backend, info: ModelInfo, config: ExtractorConfig | None = None) -> None:
        self.backend = backend
        self.info = info
        self.config = config or ExtractorConfig()
        self.timing = _Timing()
        for _ in range(self.config.warmup_iters):
            w, h = self.config.resolution if self.config.resolution[0] else self.config.warmup_size
            self.extract(np.zeros((h, w, 3), np.uint8))

    @classmethod
    def load(cls, path: str | Path, config: ExtractorConfig | None = None) -> DescriptorExtractor:
        """Open a model file: .onnx (from `export_onnx`) or .safetensors/.pt (torch)."""
        config = config or ExtractorConfig()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        backend = config.backend
        if backend == "auto":
            backend = "onnxruntime" if path.suffix == ".onnx" else "torch"
        if backend == "onnxruntime":
            if path.suffix != ".onnx":
                raise ValueError(f"backend onnxruntime needs an .onnx file, got {path} (export it first)")
            # The shared postprocessing (layout, dtype) runs in torch and is tiny: one thread. With two on a
            # busy 2-core machine it took 5.7 ms a frame against 0.2 ms (the network runs in ORT's threads).
            torch.set_num_threads(1)
            wanted = [PROVIDER_ALIASES.get(p.lower(), p) for p in config.providers]
            trt = "TensorrtExecutionProvider" in wanted
            ort_backend = OrtBackend(path, tuple(wanted), config.num_threads, config.on_fallback,
                                     trt_fp16=trt and config.precision == "fp16", trt_cache_dir=config.trt_cache_dir,
                                     allow_spinning=config.allow_spinning)
            info = metadata_to_info(ort_backend.metadata, str(path))
            if config.precision == "bf16" or (config.precision == "fp16" and not trt and info.precision != "fp16"):
                raise ValueError(f"onnxruntime runs {path.name} in its own precision ({info.precision}); "
                                 "for fp16 export with --fp16 or use the TensorRT provider")
            return cls(ort_backend, info, config)
        if path.suffix == ".onnx":
            raise ValueError(f"backend torch needs a .safetensors or .pt model, got {path}")
        model, meta = read_model_file(path)
        return cls.from_model(model, config, version=meta["version"], train_config_hash=meta["train_config_hash"])

    @classmethod
    def from_model(cls, model: DescriptorNet, config: ExtractorConfig | None = None, version: str = "unknown",
                   train_config_hash: str = "unknown") -> DescriptorExtractor:
        """Torch backend around an in-memory model (e.g. during training/evaluation)."""
        config = config or ExtractorConfig()
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        info = model_info(model, version, train_config_hash)
        backend = TorchBackend(model, config.device, config.precision, config.channels_last, config.on_fallback)
        return cls(backend, info, config)

    def processing_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) the network sees for an input of `image_size` (width, height)."""
        return tuple(self.config.resolution) if self.config.resolution[0] else tuple(image_size)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 in [0, 1] at the processing resolution."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        w, h = self.processing_size((image.shape[1], image.shape[0]))
        if (w, h) != (image.shape[1], image.shape[0]):
            shrink = w < image.shape[1] and h < image.shape[0]
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        x = image.transpose(2, 0, 1)[None].astype(np.float32)
        x *= np.float32(1.0 / 255.0)
        return x

    def extract(self, image: np.ndarray) -> DescriptorMap:
        """Descriptors of one RGB uint8 image (H, W, 3) -> DescriptorMap with (h, w, D) descriptors."""
        t0 = time.perf_counter()
        x = self.preprocess(image)
        t1 = time.perf_counter()
        d = self.backend.run(x)
        if d.device.type == "cuda":
            torch.cuda.synchronize(d.device)
        t2 = time.perf_counter()
        pw, ph = x.shape[3], x.shape[2]
        stride = self.info.stride
        if self.config.output_stride == 1 and stride != 1:
            d = F.interpolate(d.float(), size=(ph, pw), mode="bilinear", align_corners=False)
            if self.info.normalize:
                d = F.normalize(d, dim=1)
            stride = 1
        dtype = torch.float16 if self.config.output_dtype == "float16" else torch.float32
        desc = d[0].permute(1, 2, 0).to(dtype).contiguous().cpu().numpy()
        t3 = time.perf_counter()
        self.timing = _Timing((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        sx = image.shape[1] / pw * stride
        sy = image.shape[0] / ph * stride
        return DescriptorMap(desc, (sx, sy), (image.shape[1], image.shape[0]), self.info.model_id,
                             self.info.normalize)

    __call__ = extract

    def describe(self) -> str:
        """One line for logs: model, backend and what it really runs on."""
        i = self.info
        return (f"{i.name} {i.version} (id {i.model_id}, D={i.descriptor_dim}, stride {i.stride}, {i.precision}) "
                f"on {self.backend.name} [{self.backend.active}]")
