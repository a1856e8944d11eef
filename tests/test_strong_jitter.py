"""``data.strong_jitter``: the released code's strong colour jitter as a setting of its own, for every method; the
old key ``data.strong_jitter_first_source`` keeps its meaning; the paper's configs reproduce the released pipeline."""

from pathlib import Path

import pytest
import yaml

from pinmem.data.examples import write_examples
from pinmem.engine.config import from_dict, load_config, to_dict
from pinmem.errors import ConfigError
from pinmem.training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_examples(root, num_train=2, num_val=1, size=(64, 48), seed=3)
    return root


@pytest.mark.parametrize(("setting", "expected"), [("none", [False, False]), ("first_source", [True, False]),
                                                    ("all_sources", [True, True])])
@pytest.mark.parametrize("method", ["erm", "pinmem"])
def test_the_setting_decides_which_sources_get_the_strong_jitter(setting, expected, method, data_root, tmp_path):
    cfg = load_config(None, ["model.backbone=resnet18", f"data.root={data_root}", "data.targets=[]",
                             "train.crop_size=32", "data.num_workers=0", f"train.out_dir={tmp_path}",
                             f"method={method}", f"data.strong_jitter={setting}"])
    sets = Trainer(cfg)._training_sets()
    assert list(sets) == ["gtav", "synthia"]
    assert [s.transform.strong_jitter for s in sets.values()] == expected
    assert all(s.transform.jitter == (0.8, 0.8, 0.8, 0.3) and s.transform.jitter_p == 1.0
               for s in sets.values() if s.transform.strong_jitter)


def test_an_unknown_value_is_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"data.strong_jitter='first' is not one of none, first_source, all_sources"):
        load_config(None, ["data.strong_jitter=first"])


@pytest.mark.parametrize(("method", "value", "expected"), [("mldg", "true", "first_source"),
                                                           ("pinmem", "true", "first_source"),
                                                           ("erm", "true", "none"),  # the old key: meta only
                                                           ("pinmem", "false", "none")])
def test_the_old_key_keeps_its_meaning(method, value, expected):
    config = load_config(None, [f"method={method}", f"data.strong_jitter_first_source={value}"])
    assert config.data.strong_jitter == expected


def test_the_old_key_in_a_yaml_file_and_a_checkpoint_config(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"method": "mldg", "data": {"strong_jitter_first_source": True}}))
    assert load_config(path).data.strong_jitter == "first_source"
    old = to_dict(load_config(None, ["method=pinmem"]))  # a checkpoint written before the key was replaced
    del old["data"]["strong_jitter"]
    old["data"]["strong_jitter_first_source"] = True
    assert from_dict(old).data.strong_jitter == "first_source"
    assert load_config(None, [], base=old).data.strong_jitter == "first_source"
    path.write_text(yaml.safe_dump({"data": {"strong_jitter_first_source": True, "strong_jitter": "none"}}))
    with pytest.raises(ConfigError, match="not both"):
        load_config(path)


def test_the_paper_configs_reproduce_the_released_pipeline():
    """Released: MLDG and Pin the Memory jitter the first source; ERM, IBN-Net and ISW get nothing."""
    paths = sorted(CONFIGS.glob("*/*.yaml"))
    assert len(paths) >= 15
    for path in paths:
        config = load_config(path)
        expected = "first_source" if config.method in ("mldg", "pinmem") else "none"
        assert config.data.strong_jitter == expected, path
        assert "strong_jitter" in path.read_text() and "released" in path.read_text(), path
