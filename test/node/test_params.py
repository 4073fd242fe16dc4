"""The node's parameter table: defaults equal config/descriptor_node.yaml, validation, live vs configure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dense_descriptor_ros.node.params import LIVE, NodeSettings, parameter_table
from dense_descriptor_ros.pipeline import PipelineConfig

YAML = Path(__file__).resolve().parents[2] / "config" / "descriptor_node.yaml"


def test_yaml_holds_exactly_the_code_defaults():
    params = yaml.safe_load(YAML.read_text())["/**"]["ros__parameters"]
    assert params == NodeSettings().as_params()
    assert list(params) == [name for name, *_ in parameter_table()]  # same order as declared


def test_every_parameter_is_described():
    for name, _, help, _ in parameter_table():
        assert len(help) > 15, name


def test_pipeline_fields_are_all_live_parameters():
    assert set(PipelineConfig.__dataclass_fields__) == LIVE
    assert LIVE <= {name for name, *_ in parameter_table()}


def test_from_params_types_and_unknown():
    s = NodeSettings.from_params({"resolution": [640, 480], "depth_max": 5, "backend": "torch"})
    assert s.resolution == (640, 480) and s.depth_max == 5.0 and isinstance(s.depth_max, float)
    with pytest.raises(ValueError, match="unknown parameters"):
        NodeSettings.from_params({"modle_path": "x"})
    with pytest.raises(ValueError, match="map_stride must be int"):
        NodeSettings.from_params({"map_stride": "8"})


@pytest.mark.parametrize("change, match", [
    ({"backend": "tensorflow"}, "backend must be one of"),
    ({"device": "tpu"}, "device"),
    ({"map_stride": 0}, "map_stride"),
    ({"keypoint_min_confidence": 1.5}, "keypoint_min_confidence"),
    ({"depth_min": 3.0, "depth_max": 2.0}, "depth_min"),
    ({"resolution": [0, 240]}, "resolution"),
    ({"qos_reliability": "maybe"}, "qos_reliability"),
])
def test_with_changes_validates(change, match):
    with pytest.raises(ValueError, match=match):
        NodeSettings().with_changes(change)


def test_with_changes_reports_what_waits_for_configure():
    s, later = NodeSettings().with_changes({"keypoint_min_confidence": 0.3, "model_path": "m.onnx"})
    assert s.keypoint_min_confidence == 0.3 and s.pipeline_config().keypoint_min_confidence == 0.3
    assert later == ["model_path"]


def test_extractor_config():
    cfg = NodeSettings(device="cuda", require_device=True).extractor_config()
    assert cfg.providers == ("cuda", "cpu") and cfg.on_fallback == "error" and not cfg.allow_spinning
    assert NodeSettings().extractor_config().backend == "onnxruntime"
