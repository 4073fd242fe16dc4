"""`dense-descriptor keypoints`: make, average and show reference keypoint files (docs/keypoint_file.md). The
simulator adds `keypoints from-sim` to the group (sim/reference_cli.py registers the whole group)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..cli_args import size_wh


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


def _annotate(args: argparse.Namespace) -> int:
    import cv2

    from ..runtime.extractor import DescriptorExtractor, ExtractorConfig
    from .keypoints import annotate_keypoints, model_identity

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
    from .keypoints import ReferenceKeypoints

    try:
        return ReferenceKeypoints.load(path)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


def _average(args: argparse.Namespace) -> int:
    from .keypoints import average_keypoints

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


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add `keypoints {annotate,average,show}` to the package's command line; returns the group's subparsers
    (sim/reference_cli.py adds `from-sim` to them)."""
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
    return ks
