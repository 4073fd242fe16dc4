"""Shared fixtures: small textured images on disk, tiny configs."""

from __future__ import annotations

import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# A suite started as a background job of a non-interactive shell (`make test &`, nohup) inherits SIGINT ignored,
# and so does every process it starts: Python then installs no KeyboardInterrupt handler in them, and the tests,
# which stop their ROS processes with SIGINT as Ctrl-C would, wait 10 s and kill them. A handler here is reset
# to the default in each child at exec, so the children get Ctrl-C semantics back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def textured_image(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    """A random image with structure at several scales (blobs + edges), RGB uint8."""
    img = np.zeros((h, w, 3), np.float32)
    for scale in (4, 8, 16, 32):
        small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / 4
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(4, 20)),
                   tuple(x / 255 for x in c), -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    """Six readable images plus one corrupt file."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(d / f"img{i}.png"), textured_image(rng))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


@pytest.fixture(scope="session")
def val_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("val_images")
    rng = np.random.default_rng(1)
    for i in range(2):
        cv2.imwrite(str(d / f"v{i}.png"), textured_image(rng))
    return d


def tiny_overrides(image_dir: Path, val_dir: Path | None, out: Path, steps: int = 4) -> list[str]:
    """key=value overrides for a run that takes seconds."""
    return [f"data.image_dir={image_dir}", f"data.val_image_dir={val_dir or ''}", "data.image_size=[64, 96]",
            "data.n_matches=64", "data.val_pairs=2", f"steps={steps}", "batch_size=2", "workers=0",
            f"out_dir={out}", "log_every=1", "val_every=2", "image_every=2", "ckpt_every=2",
            "optim.warmup_steps=1", "model.decoder_channels=16", "model.width_mult=0.5"]


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one thread for a module: small tensor ops on a loaded 2-core machine otherwise spend their
    time in OpenMP hand-offs (measured 10-100x slower). Modules opt in with an autouse fixture."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: 10 scenes x 2 views at 160x120: train scenes 0-6, test scene 9 (held-out instances). About 4 s.
TINY_SIM = dict(scenes=10, views=2, width=160, height=120, seed=0, objects_min=3, objects_max=4, distractors_max=0,
                instances_per_category=10, settle_steps=240)


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory) -> Path:
    """A tiny synthetic dataset with train and test scenes (generated once per session)."""
    from dense_descriptor_ros.sim.generator import GenerateConfig, generate

    root = tmp_path_factory.getbasetemp() / "sim_tiny_splits"
    generate(GenerateConfig(**TINY_SIM), root, workers=1, progress=False)
    return root
