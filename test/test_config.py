from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from dense_descriptor_ros.config import ConfigError, config_hash, from_dict, load_config, parse_overrides, to_dict
from dense_descriptor_ros.train import TrainConfig


@dataclass
class Inner:
    x: float = 1.0
    size: tuple[int, int] = (2, 3)


@dataclass
class Outer:
    name: Literal["a", "b"] = "a"
    n: int = 1
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    opt: str | None = None


class TestFromDict:
    def test_defaults_and_nested(self):
        c = from_dict(Outer, {"inner": {"x": 2}, "tags": ["u"]})
        assert c.inner.x == 2.0 and isinstance(c.inner.x, float)
        assert c.inner.size == (2, 3) and c.tags == ["u"]

    @pytest.mark.parametrize(("data", "key"), [
        ({"nme": "a"}, "nme"), ({"inner": {"y": 1}}, "inner.y"), ({"n": "3"}, "n"), ({"n": 1.5}, "n"),
        ({"flag": 1}, "flag"), ({"name": "c"}, "name"), ({"inner": {"size": [1]}}, "inner.size"),
        ({"inner": {"x": True}}, "inner.x"), ({"tags": "u"}, "tags"),
    ])
    def test_errors_name_the_key(self, data, key):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            from_dict(Outer, data)

    def test_tuple_from_list_and_optional(self):
        c = from_dict(Outer, {"inner": {"size": [5, 6]}, "opt": None})
        assert c.inner.size == (5, 6) and c.opt is None

    def test_round_trip(self):
        c = from_dict(Outer, {"name": "b", "inner": {"x": 0.5}})
        assert from_dict(Outer, to_dict(c)) == c


class TestLoadConfig:
    def test_yaml_then_overrides(self, tmp_path):
        f = tmp_path / "c.yaml"
        f.write_text("steps: 7\nmodel:\n  name: fpn_resnet18\noptim:\n  lr: 0.01\n")
        cfg = load_config(TrainConfig, f, ["optim.lr=3e-4", "data.image_size=[32, 48]"])
        assert cfg.steps == 7 and cfg.model.name == "fpn_resnet18"
        assert cfg.optim.lr == pytest.approx(3e-4) and cfg.data.image_size == (32, 48)

    def test_unknown_override_key(self):
        with pytest.raises(ConfigError, match=r"optim\.learning_rate"):
            load_config(TrainConfig, None, ["optim.learning_rate=1"])

    def test_validation_in_post_init(self):
        with pytest.raises(ConfigError, match="predictor"):
            load_config(TrainConfig, None, ["loss.name=simsiam"])

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="does not exist"):
            load_config(TrainConfig, tmp_path / "nope.yaml")

    def test_override_parsing(self):
        assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}
        with pytest.raises(ConfigError):
            parse_overrides(["novalue"])

    def test_hash_changes_with_config(self):
        a, b = TrainConfig(), TrainConfig(steps=3)
        assert config_hash(a) == config_hash(TrainConfig()) != config_hash(b)


@pytest.mark.parametrize("path", sorted(p.name for p in (Path(__file__).parents[1] / "config").glob("train_*.yaml")))
def test_every_committed_training_config_loads(path):
    """The configs the docs tell users to run are valid TrainConfigs (a misspelt key or a bad value in a committed
    config would otherwise surface only when someone starts a long run)."""
    cfg = load_config(TrainConfig, Path(__file__).parents[1] / "config" / path)
    assert cfg.steps >= 1 and cfg.out_dir.startswith("runs/")


@pytest.mark.parametrize("path", sorted(p.name for p in (Path(__file__).parents[1] / "config").glob("pretrain_*.yaml")))
def test_every_committed_pretraining_config_loads(path):
    from dense_descriptor_ros.pretrain.config import PretrainConfig

    cfg = load_config(PretrainConfig, Path(__file__).parents[1] / "config" / path)
    assert cfg.steps >= 1 and cfg.out_dir.startswith("runs/")


@pytest.mark.parametrize("path", sorted(p.name for p in (Path(__file__).parents[1] / "config").glob("matcher_*.yaml")))
def test_every_committed_matcher_config_loads(path):
    from dense_descriptor_ros.train.matcher_config import MatcherTrainConfig

    cfg = load_config(MatcherTrainConfig, Path(__file__).parents[1] / "config" / path)
    assert cfg.steps >= 1 and cfg.out_dir.startswith("runs/")
    assert Path(cfg.descriptor_model).is_file()  # the shipped model it names
