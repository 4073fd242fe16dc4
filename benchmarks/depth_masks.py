"""How good are object masks from depth alone (geometry/depth_clusters.py, issue #18)?

Scores the depth-cluster masks of a synthetic dataset's views against the simulator's instance masks (any object
pixel), on the rendered depth and on that depth through the simulated sensor (sim/noise.py: disparity
quantisation and jitter, dropouts at edges and on dark surfaces; seeded), and times them:

    .venv/bin/python benchmarks/depth_masks.py --data data/sim_default [--split test] [--views 120]

Prints IoU mean / median / p10 / min, the share of true objects found (an instance counts as found when half of
its pixels are in the mask), and ms per frame.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/sim_default", help="synthetic dataset (sim generate --out)")
    ap.add_argument("--split", default="test", help="split of the dataset (default test: held-out instances)")
    ap.add_argument("--views", type=int, default=120, help="views scored, evenly spread (default 120)")
    args = ap.parse_args()

    from dense_descriptor_ros.geometry.depth_clusters import depth_clusters, mask_iou
    from dense_descriptor_ros.sim.dataset import SyntheticDataset

    ds = SyntheticDataset(args.data, args.split)
    views = [(s, v) for s in ds.scenes for v in range(ds.num_views(s))]
    views = [views[int(i)] for i in np.linspace(0, len(views) - 1, min(args.views, len(views)))]
    from dense_descriptor_ros.sim.noise import apply_depth_noise

    for key in ("rendered", "sensor noise"):
        ious, found, total, times = [], 0, 0, []
        for n, (scene, v) in enumerate(views):
            arr = ds.arrays(scene, v, ("depth", "rgb", "instance"))
            K, _ = ds.camera(scene, v)
            depth = arr["depth"].numpy()
            if key == "sensor noise":
                depth = apply_depth_noise(depth, arr["rgb"].numpy(), float(K[0, 0]), np.random.default_rng(n))
            t = time.perf_counter()
            res = depth_clusters(depth, K.numpy())
            times.append(time.perf_counter() - t)
            inst = arr["instance"].numpy()
            ious.append(mask_iou(res.mask, inst > 0))
            for i in np.unique(inst[inst > 0]):
                total += 1
                found += res.mask[inst == i].mean() >= 0.5
        q = np.percentile(ious, [50, 10])
        print(f"{key} depth: {len(ious)} views of {args.data} ({args.split}): IoU mean {np.mean(ious):.3f}, median "
              f"{q[0]:.3f}, p10 {q[1]:.3f}, min {min(ious):.3f}; objects found {found}/{total} "
              f"({found / max(total, 1):.1%}); {1000 * np.median(times):.1f} ms per frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
