"""`dense-descriptor bag process`: run the node's per-frame pipeline over a recorded bag, offline.

The same code path as the live node: the node's parameters (`NodeSettings`) give the pipeline and
extractor configs, `pipeline.inputs.decode_frame` decodes the synchronised messages, `FrameProcessor`
computes every output and `pipeline.outputs` builds the messages, which are written under the node's
output topic names, stamped with the colour image's header and logged at the colour message's log time.
Nothing depends on the wall clock, so the same input and settings give byte-identical messages.

No rclpy here (rosbags reads and writes the bag).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..node.params import NodeSettings
from ..pipeline.outputs import OUTPUT_QOS_DEPTH, OUTPUT_TYPES, output_messages, output_topics
from ..ros_core.topics import NODE_NAME
from .frames import InputStats, InputTopics, iter_synced, resolve_input_topics
from .io import BagReader, BagWriter, message_types, qos_profile

__all__ = ["NODE_NAME", "OUTPUT_TOPICS", "OUTPUT_TYPES", "ProcessOptions", "ProcessSummary", "process_bag",
           "load_pipeline"]

#: the node's outputs (its private topics with the default node name, root namespace)
OUTPUT_TOPICS = output_topics()


@dataclass
class ProcessOptions:
    """What to read and how to write (the pipeline itself is set by NodeSettings)."""

    color_topic: str | None = None  # None: the topic ending in color/image_raw
    depth_topic: str | None = None  # None: the one ending in aligned_depth_to_color/image_raw; "none": no depth
    info_topic: str | None = None  # None: the one ending in color/camera_info; "none": no intrinsics
    include_inputs: bool = False  # copy the input topics' messages into the output bag too
    storage: str = "mcap"  # "mcap" or "sqlite3"
    compression: str = "auto"  # "auto" (zstd chunks for mcap, none for sqlite3), "zstd" or "none"
    overwrite: bool = False  # replace an existing output bag (once the new one is complete)
    progress: bool = True  # progress bar on stderr


@dataclass
class ProcessSummary:
    """What `process_bag` did, with per-stage timings (milliseconds per frame)."""

    input: str
    output: str
    topics: InputTopics
    backend: str  # the extractor's one-line description
    color_messages: int = 0
    frames_processed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> frames dropped by the pipeline's checks
    inputs: InputStats = field(default_factory=InputStats)
    no_valid_depth: int = 0  # frames whose depth had no valid pixel (3D outputs invalid)
    written: dict[str, int] = field(default_factory=dict)  # output topic -> messages
    stage_ms: dict[str, list[float]] = field(default_factory=dict)  # stage -> per-frame milliseconds
    wall_s: float = 0.0  # reading to closing the output bag (model loading excluded)
    load_s: float = 0.0  # model loading and warm-up

    @property
    def fps(self) -> float:
        """Processed frames per second, everything included (read, decode, pipeline, write)."""
        return self.frames_processed / self.wall_s if self.wall_s > 0 else 0.0

    def stage_fps(self, stage: str) -> float:
        """Frames per second if only `stage` ran ("extract" = bare inference with pre/postprocessing)."""
        total = sum(self.stage_ms.get(stage, [])) / 1e3
        return self.frames_processed / total if total > 0 else 0.0

    def format(self) -> str:
        """The summary printed at the end of `bag process`."""
        s = self.inputs
        lines = [f"{self.input} -> {self.output}",
                 f"inputs: colour {self.topics.color}, depth {self.topics.depth or 'none'}, "
                 f"camera info {self.topics.info or 'none'}",
                 f"model: {self.backend} (loaded in {self.load_s:.1f} s)",
                 f"frames: {self.frames_processed} processed of {self.color_messages} colour messages "
                 f"({s.synced} synchronised)"]
        unmatched = {k: v for k, v in s.unmatched.items() if v}
        if unmatched:
            lines.append("  unsynchronised (no partner within the slop): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(unmatched.items())))
        bad = {k: v for k, v in s.undecodable.items() if v}
        if bad:
            lines.append("  undecodable messages: " + ", ".join(f"{k} {v}" for k, v in sorted(bad.items()))
                         + f" (first: {next(iter(s.first_errors.values()))})")
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  dropped {n}: {reason}")
        if s.no_info:
            lines.append(f"  {s.no_info} frame(s) before the first camera info: 2D outputs only")
        if self.no_valid_depth:
            lines.append(f"  {self.no_valid_depth} frame(s) without any valid depth: 3D outputs invalid")
        lines.append("written: " + ", ".join(f"{t} {n}" for t, n in self.written.items()))
        if self.frames_processed:
            order = ("read", "decode", "inference", "extract", "map", "pca", "labels", "keypoints",
                     "correspondences", "total", "write")
            parts = [f"{k} {np.median(self.stage_ms[k]):.1f}" for k in order if self.stage_ms.get(k)]
            lines.append("median ms/frame: " + ", ".join(parts) + "  (extract = preprocess + inference + "
                         "postprocess; total = the whole pipeline)")
            lines.append(f"throughput: {self.fps:.1f} frames/s end to end ({self.wall_s:.2f} s); bare inference "
                         f"on the same frames {self.stage_fps('extract'):.1f} frames/s "
                         f"(network alone {self.stage_fps('inference'):.1f})")
        return "\n".join(lines)


def load_pipeline(settings: NodeSettings):
    """(FrameProcessor, model path) as the node's configure + activate build them.

    Raises:
        ModelFileError: missing / unreadable model or keypoint file; ModelMismatchError (ValueError):
        keypoints of another model; BackendFallbackError: missing device with require_device.
    """
    from ..matcher.runtime import LearnedMatcher
    from ..pipeline import FrameProcessor
    from ..pipeline.inputs import load_part_probe, load_reference_keypoints, resolve_matcher_file
    from ..runtime.extractor import DescriptorExtractor
    from ..runtime.model_files import probe_model, resolve_model_path

    path = resolve_model_path(settings.model_path, settings.backend)
    info = probe_model(path)
    reference = load_reference_keypoints(settings.keypoints_file, path, info.model_id, settings.backend)
    probe = load_part_probe(settings.part_probe_file, path, info.model_id, settings.backend, info.descriptor_dim)
    matcher_path = resolve_matcher_file(settings.matcher_file, path, info.model_id, settings.backend,
                                        settings.correspondence_method)
    extractor = DescriptorExtractor.load(path, settings.extractor_config())
    matcher = (LearnedMatcher(matcher_path, settings.num_threads, allow_spinning=False) if matcher_path is not None
               else None)
    return FrameProcessor(extractor, reference, settings.pipeline_config(), probe, matcher), path


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"[:160]


def process_bag(inp: str | Path, out: str | Path, settings: NodeSettings | None = None,
                options: ProcessOptions | None = None, log=print) -> ProcessSummary:
    """Run the pipeline over every synchronised frame of `inp` and write `out` (see module docstring).

    Raises:
        BagError: unreadable input, missing / ambiguous topics, output exists or cannot be written (a
            partial output is removed).
        ModelFileError, ValueError: model or keypoint problems (before anything is written).
    """
    from tqdm import tqdm

    from ..pipeline import Wanted
    from ..pipeline.inputs import DECODE_ERRORS, decode_frame

    settings = settings or NodeSettings()
    o = options or ProcessOptions()
    with BagReader(inp) as reader:
        topics = resolve_input_topics(reader, o.color_topic, o.depth_topic, o.info_topic)
        t0 = time.perf_counter()
        processor, model_path = load_pipeline(settings)
        summary = ProcessSummary(str(inp), str(out), topics, processor.extractor.describe(),
                                 color_messages=reader.topics[topics.color].count,
                                 load_s=time.perf_counter() - t0)
        log(f"model {model_path}: {summary.backend}")
        if processor.reference is None:
            log("no keypoint file: keypoint output off")
        if processor.probe is not None:
            log(f"part probe: labels output on ({processor.probe.num_classes} classes)")
        if processor.config.correspondence_mode != "off":
            log(f"correspondences: {processor.config.correspondence_method}"
                + (f" ({processor.matcher.path}, {processor.matcher.backend})"
                   if processor.config.correspondence_method == "matcher" else ""))
        store = reader.store
        types = message_types(store)
        wanted = Wanted()
        t_start = time.perf_counter()
        with BagWriter(out, o.storage, o.compression, o.overwrite, store=store) as writer:
            writer.set_custom("dense_descriptor_ros.model_id", processor.extractor.info.model_id)
            writer.set_custom("dense_descriptor_ros.settings",
                                           json.dumps(settings.as_params(), sort_keys=True))
            keys = ["descriptors", "pca"] + (["keypoints"] if processor.reference is not None else [])
            keys += ["correspondences"] if processor.config.correspondence_mode != "off" else []
            keys += ["labels"] if processor.probe is not None else []
            conns = {k: writer.add_topic(OUTPUT_TOPICS[k], OUTPUT_TYPES[k],
                                         [qos_profile(True, OUTPUT_QOS_DEPTH[k])]) for k in keys}
            copies: dict[str, Any] = {}
            if o.include_inputs:
                for name in (topics.color, topics.depth, topics.info):
                    if name:
                        t = reader.topics[name]
                        msgdef, digest = t.msgdef
                        copies[name] = writer.add_topic(name, t.msgtype, t.offered_qos, msgdef, digest)

            def copy(topic: str, msgtype: str, log_ns: int, raw: bytes) -> None:
                if topic in copies:
                    writer.write(copies[topic], log_ns, raw)

            stages: dict[str, list[float]] = summary.stage_ms
            dropped: Counter[str] = Counter()
            bar = tqdm(total=summary.color_messages, desc="bag process", unit="frame", disable=not o.progress,
                       dynamic_ncols=True)
            synced = iter_synced(reader, topics, settings.sync_slop, settings.sync_exact, settings.sync_queue,
                                 summary.inputs, on_message=copy)
            t_read = time.perf_counter()
            try:
                for item in synced:
                    t1 = time.perf_counter()
                    stages.setdefault("read", []).append((t1 - t_read) * 1e3)
                    bar.update(1)
                    try:
                        frame = decode_frame(item.color, item.depth, item.info, settings)
                    except DECODE_ERRORS as e:
                        dropped[_reason(e)] += 1
                        t_read = time.perf_counter()
                        continue
                    t2 = time.perf_counter()
                    stages.setdefault("decode", []).append((t2 - t1) * 1e3)
                    if frame.depth is not None and frame.K is not None and np.isnan(frame.depth).all():
                        summary.no_valid_depth += 1
                    r = processor.process(frame, wanted)
                    for k, v in r.timings_ms.items():
                        stages.setdefault(k, []).append(v)
                    t3 = time.perf_counter()
                    log_ns = item.log_ns
                    for spec, msg in output_messages(types, r):  # what the node would publish
                        writer.write_msg(conns[spec.key], log_ns, msg)
                    summary.frames_processed += 1
                    t_read = time.perf_counter()
                    stages.setdefault("write", []).append((t_read - t3) * 1e3)
            finally:
                bar.close()
            summary.dropped = dict(dropped)
            summary.written = {OUTPUT_TOPICS[k]: writer.counts.get(OUTPUT_TOPICS[k], 0) for k in keys}
            summary.written.update({t: writer.counts.get(t, 0) for t in copies})
        summary.wall_s = time.perf_counter() - t_start
    return summary
