"""`dense-descriptor export`: a model file to ONNX with metadata, and the parity check."""

from __future__ import annotations

import argparse
import time

from ..cli_args import size_wh
from .export import FP32_TOLERANCE, check_parity, export_onnx, read_model_file


def _load_model(path: str):
    try:
        return read_model_file(path)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise SystemExit(f"error: cannot load model {path}: {e}") from None


def _export(args: argparse.Namespace) -> int:
    model, meta = _load_model(args.model)
    t0 = time.perf_counter()
    w, h = args.trace_size
    try:
        info = export_onnx(model, args.out, fp16=args.fp16, upsample=args.upsample, opset=args.opset,
                           trace_size=(h, w), version=meta["version"], train_config_hash=meta["train_config_hash"])
    except OSError as e:
        raise SystemExit(f"error: cannot write {args.out}: {e}") from None
    dt = time.perf_counter() - t0
    print(f"exported {info.name} ({info.version}, id {info.model_id}, D={info.descriptor_dim}, "
          f"stride {info.stride}, {info.precision}) to {args.out} in {dt:.1f} s")
    # Parity at sizes other than the traced one (one not divisible by the stride): dynamic H/W really work.
    sizes = ((h // 2 + 3, w // 2 + 5), (h, w))
    parity = check_parity(model, args.out, sizes=sizes)
    with_ref = "fp16 graph vs fp32 PyTorch" if args.fp16 else "fp32"
    print(f"parity vs PyTorch on ONNX Runtime CPU ({with_ref}), max abs diff: "
          + ", ".join(f"{k}: {v:.2e}" for k, v in parity.items()))
    worst = max(parity.values())
    if args.fp16:
        print(f"fp16 max abs diff {worst:.2e} (reported; fp16 keeps ~3 significant digits)")
        return 0
    if worst >= FP32_TOLERANCE:
        print(f"FAILED: fp32 parity {worst:.2e} >= {FP32_TOLERANCE:.0e}")
        return 1
    print(f"OK (< {FP32_TOLERANCE:.0e})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` to the package's command line."""
    p = subparsers.add_parser("export", help="export a model to ONNX (dynamic H/W, metadata) and check parity",
                              description="Export a .safetensors/.pt model to ONNX with dynamic batch, height "
                                          "and width and self-describing metadata, then compare it with "
                                          "PyTorch on ONNX Runtime CPU at other input sizes.")
    p.add_argument("--model", required=True, help="model file (.safetensors or training checkpoint .pt)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and output (input stays float32)")
    p.add_argument("--upsample", action="store_true",
                   help="upsample to full resolution inside the graph (default: native stride; the runtime "
                        "can upsample with output_stride=1)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--trace-size", type=size_wh, default=(320, 240), metavar="WxH",
                   help="size of the tracing input (default 320x240)")
    p.set_defaults(func=_export)
