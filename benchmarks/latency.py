"""Deployment latency in one run: every architecture x backend through `DescriptorExtractor`, and matching.

Prints ms/frame (median, or min with --stat min; batch 1, native-stride output, pre- and postprocessing
included) at 640x480 and 320x240 for PyTorch and ONNX Runtime on the CPU, each with its speed-up over the Dense
Object Nets reference (ResNet-34, stride 8) on the same backend and size; then the cost of locating 20
named keypoints plus 500 frame-to-frame correspondences on 640x480 descriptor maps of the lite model,
coarse-to-fine against direct matching (speed, and accuracy on a known shift).

    .venv/bin/python benchmarks/latency.py [--threads 2] [--repeats 10] [--arch lite don_resnet34 ...]
        [--model trained.safetensors]   # a trained lite model for the matching part (else random init)
        [--model-file default=models/default/model.safetensors ...]   # model files timed beside the architectures
        [--rotation-orders 4 8]   # and each model file lifted to C_N (rotation-invariant), with circular matching
        [--matcher runs/matcher/matcher.safetensors]   # the learned matcher at 320x240 (issue #17)

Random-init weights are used for timing (latency does not depend on the weights). Targets from the
project's issue: lite on ONNX Runtime at 640x480 <= 40 ms and >= 9x faster than the reference;
20 keypoints + 500 correspondences <= 10 ms; the shipped default (issue #14) on ONNX Runtime at 320x240 <= 20 ms
and >= 9x faster than the reference; the learned matcher (issue #17) on a 320x240 pair <= 40 ms.
Matching runs with OPENBLAS_NUM_THREADS=1 (see
`pin_blas_threads`; --blas-threads 0 keeps the library default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dense_descriptor_ros.matching import (
    annotate_keypoints,
    detect_keypoints,
    locate_keypoints,
    match_dense,
    model_identity,
)
from dense_descriptor_ros.models import ARCHITECTURES, ModelConfig, build_model
from dense_descriptor_ros.runtime import DescriptorExtractor, DescriptorMap, ExtractorConfig, export_onnx
from dense_descriptor_ros.runtime.export import read_model_file

REFERENCE = "don_resnet34"
SIZES = ((640, 480), (320, 240))
SHIFT = (5.3, -3.7)  # pixels, frame B = frame A moved by SHIFT
METHODS = (("coarse-to-fine, pool 4 (default)", {"coarse_factor": 4}),
           ("coarse-to-fine, pool 4, 3 candidates", {"coarse_factor": 4, "candidates": 3}),
           ("coarse-to-fine, pool 2", {"coarse_factor": 2}),
           ("direct (every fine cell)", {"coarse_factor": 1}))


STAT = {"fn": statistics.median, "name": "median"}  # --stat min: closer to an idle machine's numbers


def time_ms(fn, repeats: int, budget_s: float = 6.0) -> float:
    """Median (or, with --stat min, fastest) wall time of fn() in ms after one warm-up call; fewer
    repeats for slow calls (>= 3)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * STAT["fn"](times)


def test_image(w: int = 640, h: int = 480) -> np.ndarray:
    """A natural image shipped with scikit-image (offline), resized to w x h."""
    from skimage import data

    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


def shift_image(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _models(archs: list[str], files: dict[str, str]):
    """(name, torch model) of every architecture (random init, D = 16) and of every model file (its weights)."""
    for arch in archs:
        torch.manual_seed(0)
        yield arch, build_model(ModelConfig(name=arch)).eval()
    for name, path in files.items():
        model, _ = read_model_file(path)
        yield f"{name} ({model.config.name}, D={model.config.descriptor_dim})", model.eval()


def latency_table(archs: list[str], threads: int, repeats: int, tmp: Path, spinning: bool = True,
                  files: dict[str, str] | None = None) -> dict[tuple[str, str, int], float]:
    torch.set_num_threads(threads)
    results: dict[tuple[str, str, int], float] = {}
    for arch, model in _models(archs, files or {}):
        onnx_path = tmp / f"{arch.split()[0]}.onnx"
        export_onnx(model, onnx_path)
        for backend in ("torch", "onnxruntime"):
            cfg = ExtractorConfig(backend=backend, num_threads=threads, warmup_iters=0, allow_spinning=spinning)
            ext = (DescriptorExtractor.from_model(model, cfg) if backend == "torch"
                   else DescriptorExtractor.load(onnx_path, cfg))
            for w, h in SIZES:
                img = test_image(w, h)
                results[arch, backend, w] = time_ms(lambda e=ext, i=img: e(i), repeats)
            print(f"  measured {arch:13s} {backend:12s}"
                  + "".join(f"  {w}x{h}: {results[arch, backend, w]:8.1f} ms" for w, h in SIZES), flush=True)
        if arch == "lite":
            cfg = ExtractorConfig(num_threads=threads, warmup_iters=0, output_stride=1, allow_spinning=spinning)
            ext = DescriptorExtractor.load(onnx_path, cfg)
            for w, h in SIZES:
                img = test_image(w, h)
                key = ("lite (upsampled to stride 1)", "onnxruntime", w)
                results[key] = time_ms(lambda e=ext, i=img: e(i), repeats)
    return results


def print_table(results: dict[tuple[str, str, int], float]) -> None:
    rows = sorted({(a, b) for a, b, _ in results}, key=lambda r: (r[1], r[0]))
    head = f"| {'architecture':30s} | {'backend':11s} |" + "".join(
        f" {w}x{h} ms | x faster than DON |" for w, h in SIZES)
    print("\n" + head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for arch, backend in rows:
        line = f"| {arch:30s} | {backend:11s} |"
        for w, _ in SIZES:
            ms = results[arch, backend, w]
            ref = results.get((REFERENCE, backend, w))
            ratio = f"{ref / ms:17.1f}" if ref else f"{'-':>17s}"
            line += f" {ms:10.1f} | {ratio} |"
        print(line)


def synthetic_pair(h: int = 120, w: int = 160, d: int = 16, sigma: float = 2.0) -> tuple[DescriptorMap, DescriptorMap]:
    """Smooth random descriptor maps at stride 4 (a 640x480 frame) and an exact copy moved by SHIFT."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    f = ndimage.gaussian_filter(rng.standard_normal((h, w, d)), (sigma, sigma, 0), mode="wrap")
    f = (f / f.std()).astype(np.float32)
    g = ndimage.shift(f, (SHIFT[1] / 4, SHIFT[0] / 4, 0), order=3, mode="nearest").astype(np.float32)
    return DescriptorMap(f, (4, 4), (640, 480)), DescriptorMap(g, (4, 4), (640, 480))


def matching(threads: int, repeats: int, model_path: str | None, tmp: Path) -> None:
    if model_path:
        model, _ = read_model_file(model_path)
        what = f"trained model {model_path}"
    else:
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="lite")).eval()
        what = "random-init lite (pass --model for a trained one)"
    export_onnx(model, tmp / "match.onnx")
    ext = DescriptorExtractor.load(tmp / "match.onnx", ExtractorConfig(num_threads=threads, warmup_iters=1))
    img_a = test_image()
    img_b = shift_image(img_a, *SHIFT)
    ma, mb = ext(img_a), ext(img_b)
    kp_uv, _ = detect_keypoints(ma, min_distance=24, max_keypoints=20, border=4)
    ref = annotate_keypoints(ma, {f"kp{i}": tuple(p) for i, p in enumerate(kp_uv)}, model_identity(ext.info), "bench")

    print(f"\nMatching at 640x480 ({what}; maps {ma.descriptors.shape} at stride {ma.stride[0]:.0f}, "
          f"frame B = frame A moved by {SHIFT} px)")
    t_kp = time_ms(lambda: locate_keypoints(ref, mb), 5 * repeats)
    loc = locate_keypoints(ref, mb)
    err = np.linalg.norm(loc.uv[loc.found] - kp_uv[loc.found] - np.array(SHIFT), axis=1)
    print(f"  locate {len(ref.names)} named keypoints: {t_kp:6.2f} ms  ({loc.found.sum()} found, "
          f"median error {np.median(err) if len(err) else float('nan'):.2f} px)")
    t_det = time_ms(lambda: detect_keypoints(ma, max_keypoints=500), 5 * repeats)
    print(f"  detect 500 keypoints (distinctiveness + NMS): {t_det:6.2f} ms")
    # Speed on the real pair; accuracy as agreement with direct matching query by query (no filtering:
    # the approximation error of coarse-to-fine alone) and as matches within 1 px of the known shift,
    # on the real pair and on smooth synthetic maps whose correlation length sigma (in cells) stands
    # for how smooth trained descriptors are (coarse-to-fine needs them smooth at the pooled scale).
    sets = {"real pair": (ma, mb)} | {f"synthetic sigma={s:g}": synthetic_pair(sigma=s) for s in (1.0, 1.5, 2.0)}
    everything = {"max_ratio": 1.0, "mutual": False, "max_matches": 0}
    direct = {k: _by_query(match_dense(a, b, coarse_factor=1, **everything)) for k, (a, b) in sets.items()}
    head = f"  | {'500 correspondences':36s} | {'ms':>6s} |" + "".join(f" {k:>30s} |" for k in sets)
    print("\n" + head + "\n  |" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    timings = {}
    for label, kw in METHODS:
        timings[label] = time_ms(lambda kw=kw: match_dense(ma, mb, max_matches=500, **kw), 2 * repeats)
        line = f"  | {label:36s} | {timings[label]:6.2f} |"
        for k, (a, b) in sets.items():
            same = np.linalg.norm(_by_query(match_dense(a, b, **everything, **kw)) - direct[k], axis=1) < 1
            c = match_dense(a, b, max_matches=500, **kw)
            err = np.linalg.norm(c.uv_b - c.uv_a - np.array(SHIFT), axis=1)
            line += f" agree {100 * same.mean():3.0f}%, {len(c):3d} kept, {100 * np.mean(err < 1):3.0f}% <1px |"
        print(line)
    print("  (agree: same match as direct matching within 1 px, all queries unfiltered; kept: after ratio test "
          "0.9 and mutual check, cap 500; <1px: kept matches within 1 px of the true shift)")
    fast, slow = timings[METHODS[0][0]], timings[METHODS[-1][0]]
    total = t_kp + fast
    print(f"\n  20 keypoints + 500 correspondences ({METHODS[0][0]}): {total:.2f} ms (target <= 10 ms): "
          f"{'PASS' if total <= 10 else 'MISS'};  with direct matching: {t_kp + slow:.1f} ms "
          f"({slow / fast:.0f}x slower)")


def rotation_costs(files: dict[str, str], orders: list[int], threads: int, repeats: int) -> None:
    """What rotation invariance costs (issue #16): each model file in PyTorch at 320x240, plain and lifted to C_N
    (`c<N>:` methods: N passes on the turned image, pooled), and circular matching of 300 keypoints on its map."""
    from dense_descriptor_ros.eval.methods import lifted_method, model_method
    from dense_descriptor_ros.rotation.circular import circular_descriptors, circular_match

    torch.set_num_threads(threads)
    img = torch.from_numpy(test_image(320, 240)).permute(2, 0, 1)[None].float() / 255
    print("\nRotation invariance at 320x240 (PyTorch, eval.methods; ms/frame, x the plain model)")
    for name, path in files.items():
        plain = model_method(path, name)
        base = time_ms(lambda plain=plain: plain.describe(img), repeats)
        line = f"  {name}: plain {base:.1f} ms"
        for n in orders:
            m = lifted_method(plain, n)
            ms = time_ms(lambda m=m: m.describe(img), max(3, repeats // 2))
            line += f", c{n} {ms:.1f} ms ({ms / base:.1f}x)"
        d = plain.describe(img)[0]
        uv = torch.rand(300, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([319.0, 239.0])
        ring = circular_descriptors(d, uv, plain.stride)
        def ring_match(d=d, uv=uv, s=plain.stride, ring=ring):
            return circular_match(circular_descriptors(d, uv, s), ring)

        t_ring = time_ms(ring_match, repeats)
        print(line + f"; circular descriptors + matching of 300 keypoints {t_ring:.1f} ms", flush=True)


def learned_matcher_costs(matcher_files: list[str], threads: int, repeats: int, tmp: Path) -> None:
    """What the learned matcher costs (issue #17) at 320x240 in ONNX Runtime (`threads` threads): the matcher alone on
    two descriptor maps (their images too when it reads them), the descriptor matching of the node on the same maps
    for scale, and both together with the two frames' descriptor extraction. Target: matcher <= 40 ms."""
    from dense_descriptor_ros.matcher.export import export_matcher_onnx
    from dense_descriptor_ros.matcher.io import load_matcher
    from dense_descriptor_ros.matcher.runtime import LearnedMatcher

    print(f"\nLearned matcher at 320x240 (ONNX Runtime, {threads} threads; a pair of frames)")
    img_a = test_image(320, 240)
    img_b = shift_image(img_a, *SHIFT)
    for path in matcher_files:
        net, info = load_matcher(path)
        onnx_path = tmp / f"{Path(path).stem}.onnx"
        export_matcher_onnx(net, info, onnx_path)
        matcher = LearnedMatcher(onnx_path, num_threads=threads)
        # the descriptor model it was trained on, if it is at hand: the shipped default, else random maps of its D
        extractor = None
        default = Path("models/default/model.onnx")
        if default.is_file() and read_model_file_id(default) == info.descriptor_model_id:
            extractor = DescriptorExtractor.load(default, ExtractorConfig(num_threads=threads))
        if extractor is not None:
            map_a, map_b = extractor.extract(img_a), extractor.extract(img_b)
        else:
            g = np.random.default_rng(0)
            d = net.config.descriptor_dim
            maps = [g.standard_normal((60, 80, d)).astype(np.float32) for _ in range(2)]
            map_a, map_b = (DescriptorMap(m / np.linalg.norm(m, axis=-1, keepdims=True), (4, 4), (320, 240),
                                          info.descriptor_model_id, True) for m in maps)
        t_match = time_ms(lambda m=matcher, a=map_a, b=map_b: m.match(a, b, image_a=img_a, image_b=img_b), repeats)
        q, _ = detect_keypoints(map_a, min_distance=12.0, max_keypoints=800)
        t_desc = time_ms(lambda a=map_a, b=map_b, q=q: match_dense(a, b, points_a=q, max_ratio=0.9, max_matches=200),
                         repeats)
        line = (f"  {Path(path).name}: matcher {t_match:.1f} ms (target <= 40 ms: {'PASS' if t_match <= 40 else 'MISS'}"
                f"; {1000 / t_match:.0f} Hz), the node's descriptor matching {t_desc:.1f} ms")
        if extractor is not None:
            t_ext = time_ms(lambda e=extractor: e.extract(img_b), repeats)
            line += (f"; one frame's descriptors {t_ext:.1f} ms, so descriptors + matcher {t_ext + t_match:.1f} ms a "
                     f"frame ({1000 / (t_ext + t_match):.0f} Hz)")
        else:
            line += " (random maps: its descriptor model is not the shipped one)"
        print(line, flush=True)


def read_model_file_id(path: Path) -> str:
    from dense_descriptor_ros.runtime.export import read_onnx_info

    return read_onnx_info(path).model_id


def _by_query(c) -> np.ndarray:
    """uv_b ordered by query position uv_a."""
    return c.uv_b[np.lexsort((c.uv_a[:, 1], c.uv_a[:, 0]))]


def pin_blas_threads(n: int) -> None:
    """Re-run this script with OPENBLAS_NUM_THREADS=n (it must be set before numpy loads OpenBLAS).

    Matching multiplies small matrices ((1200 x 16) @ (16 x 1200)); threading them gains ~0.2 ms on an
    idle machine but costs 2-3x when another process holds a core (OpenBLAS threads spin): measured
    7 ms -> 19.5 ms for 500 correspondences. A node should set the same variable."""
    if n > 0 and os.environ.get("OPENBLAS_NUM_THREADS") != str(n):
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, OPENBLAS_NUM_THREADS=str(n)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (ORT session, torch)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--arch", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    p.add_argument("--model", default=None, help="trained lite model for the matching part")
    p.add_argument("--model-file", nargs="+", default=[], metavar="NAME=FILE",
                   help="model files (.safetensors) timed beside the architectures, with their own weights and D")
    p.add_argument("--skip-models", action="store_true", help="matching part only")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OPENBLAS_NUM_THREADS for matching (default 1, see pin_blas_threads; 0 = leave as is)")
    p.add_argument("--no-spinning", action="store_true",
                   help="ONNX Runtime threads do not spin (ExtractorConfig.allow_spinning=False); much faster "
                        "when other processes load the cores")
    p.add_argument("--rotation-orders", type=int, nargs="*", default=[], metavar="N",
                   help="also time every --model-file lifted to C_N (e.g. 4 8) and circular matching (issue #16)")
    p.add_argument("--matcher", nargs="*", default=[], metavar="FILE",
                   help="learned matcher files (.safetensors) to time at 320x240 (issue #17)")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="statistic over the repeats; min approximates an idle machine when others load it")
    args = p.parse_args()
    pin_blas_threads(args.blas_threads)
    STAT.update(fn=min if args.stat == "min" else statistics.median, name=args.stat)
    archs = list(dict.fromkeys(args.arch + ([REFERENCE] if REFERENCE not in args.arch else [])))
    files = {}
    for item in args.model_file:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            p.error(f"--model-file {item!r}: expected NAME=FILE with an existing model file")
        files[name] = path
    print(f"torch {torch.__version__}, threads {args.threads}, ORT spinning {not args.no_spinning}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, CPU; "
          f"ms/frame = {STAT['name']} of up to {args.repeats} calls of DescriptorExtractor "
          "(uint8 image in, native-stride (h, w, D) float32 out)")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other processes inflate every number below)")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_models:
            results = latency_table(archs, args.threads, args.repeats, tmp, not args.no_spinning, files)
            print_table(results)
            lite, ref = results.get(("lite", "onnxruntime", 640)), results.get((REFERENCE, "onnxruntime", 640))
            if lite and ref:
                print(f"\nlite on ONNX Runtime at 640x480: {lite:.1f} ms (target <= 40 ms): "
                      f"{'PASS' if lite <= 40 else 'MISS'}; {ref / lite:.1f}x faster than {REFERENCE} "
                      f"(target >= 9x): {'PASS' if ref / lite >= 9 else 'MISS'}")
            ref = results.get((REFERENCE, "onnxruntime", 320))
            for name in [a for a, b, w in results if b == "onnxruntime" and w == 320 and a.split()[0] in files]:
                ms = results[name, "onnxruntime", 320]
                print(f"{name} on ONNX Runtime at 320x240: {ms:.1f} ms (target <= 20 ms): "
                      f"{'PASS' if ms <= 20 else 'MISS'}; {ref / ms:.1f}x faster than {REFERENCE} "
                      f"(target >= 9x): {'PASS' if ref / ms >= 9 else 'MISS'}")
            if args.rotation_orders and files:
                rotation_costs(files, args.rotation_orders, args.threads, args.repeats)
        matching(args.threads, args.repeats, args.model, tmp)
        if args.matcher:
            learned_matcher_costs(args.matcher, args.threads, args.repeats, tmp)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
