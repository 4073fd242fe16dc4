"""`dense-descriptor export` and `dense-descriptor keypoints {annotate,average,show}`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..cli_args import size_wh
from ..sim.reference_cli import register_from_sim
from .export import FP32_TOLERANCE, check_parity, export_onnx, read_model_file


def _point(text: str) -> tuple[str, tuple[float, float]]:
    """"handle_top:320,241.5" -> ("handle_top", (320.0, 241.5))."""
    name, sep, rest = text.rpartition(":")
    try:
        u, v = (float(x) for x in rest.split(","))
    except ValueError:
        name = ""
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME:U,V (pixel column,row) such as handle_top:320,241, "
                                         f"got {text!r}")
    return name, (u, v)


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


def _annotate(args: argparse.Namespace) -> int:
    import cv2

    from ..matching.keypoints import annotate_keypoints, model_identity
    from .extractor import DescriptorExtractor, ExtractorConfig

    names = [n for n, _ in args.point]
    if len(set(names)) != len(names):
        raise SystemExit(f"error: keypoint names must be unique, got {names}")
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"error: cannot read image {args.image}")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    cfg = ExtractorConfig(device=args.device, providers=tuple(args.providers.split(",")),
                          resolution=args.resolution or (0, 0), warmup_iters=0)
    try:
        extractor = DescriptorExtractor.load(args.model, cfg)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: cannot load model {args.model}: {e}") from None
    dmap = extractor(rgb)
    try:
        ref = annotate_keypoints(dmap, dict(args.point), model_identity(extractor.info), args.category,
                                 image=str(args.image), notes=args.notes)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    ref.save(args.out)
    print(f"wrote {len(ref.names)} keypoints ({', '.join(ref.names)}) of category {ref.category!r}, "
          f"D={ref.descriptor_dim}, model {extractor.info.name} {extractor.info.model_id} to {args.out}")
    return 0


def _read_keypoints(path: str):
    from ..matching.keypoints import ReferenceKeypoints

    try:
        return ReferenceKeypoints.load(path)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


def _average(args: argparse.Namespace) -> int:
    from ..matching.keypoints import average_keypoints

    refs = [_read_keypoints(p) for p in args.files]
    try:
        out = average_keypoints(refs, args.category)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    out.save(args.out)
    counts = ", ".join(f"{n} ({len(s)})" for n, s in zip(out.names, out.sources, strict=True))
    print(f"wrote {len(out.names)} category-level keypoints of {out.category!r} to {args.out}; "
          f"instances per keypoint: {counts}")
    return 0


def _show(args: argparse.Namespace) -> int:
    ref = _read_keypoints(args.file)
    m = ref.model
    print(f"{args.file}: category {ref.category!r}, {len(ref.names)} keypoints, D={ref.descriptor_dim}, "
          f"model {m.get('name')} {m.get('version')} (id {m.get('id')})")
    for n, d, s in zip(ref.names, ref.descriptors, ref.sources, strict=True):
        where = "; ".join(f"{Path(x.get('image', '')).name or '?'} @ "
                          f"({x['uv'][0]:.1f}, {x['uv'][1]:.1f})" if "uv" in x else "?" for x in s)
        print(f"  {n:20s} |d|={np.linalg.norm(d):.3f}  from {len(s)}: {where}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` and `keypoints` to the package's command line."""
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

    k = subparsers.add_parser("keypoints", help="reference keypoint files (docs/keypoint_file.md)")
    ks = k.add_subparsers(dest="keypoints_command", metavar="{annotate,average,show,from-sim}", required=True)
    a = ks.add_parser("annotate", help="named keypoints from pixels of a reference image",
                      description="Sample the model's descriptors at named pixels of a reference image and write "
                                  "a keypoint file. Average several such files (one per instance) with "
                                  "`keypoints average` to make category-level keypoints.")
    a.add_argument("--model", required=True, help="model file (.onnx, .safetensors or .pt)")
    a.add_argument("--image", required=True, help="reference RGB image (any format OpenCV reads)")
    a.add_argument("--point", type=_point, action="append", required=True, metavar="NAME:U,V",
                   help="a named pixel (column,row), repeatable: --point handle_top:320,241")
    a.add_argument("--category", required=True, help="object category, e.g. mug")
    a.add_argument("--out", required=True, help="keypoint file to write (.json)")
    a.add_argument("--notes", default="", help="free text stored in the file")
    a.add_argument("--resolution", type=size_wh, default=None, metavar="WxH",
                   help="processing resolution (default: the image's); use the one the node will use")
    a.add_argument("--device", default="cpu", help="torch device for .safetensors/.pt models")
    a.add_argument("--providers", default="cpu", help="ONNX Runtime providers in order, e.g. cuda,cpu")
    a.set_defaults(func=_annotate)
    v = ks.add_parser("average", help="average keypoint files of several instances (category-level)")
    v.add_argument("files", nargs="+", help="keypoint files made with the same model")
    v.add_argument("--out", required=True, help="keypoint file to write")
    v.add_argument("--category", default=None, help="category of the result (default: the first file's)")
    v.set_defaults(func=_average)
    s = ks.add_parser("show", help="print a keypoint file's contents")
    s.add_argument("file")
    s.set_defaults(func=_show)
    register_from_sim(ks)
