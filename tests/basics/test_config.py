import pytest

from augkd.basics.config import Config, config_keys, load_config, with_overrides
from augkd.basics.errors import ConfigError


def test_defaults_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["module2.temperature=0.5", "module3.schedule=step"])
    path = tmp_path / "config.yaml"
    config.save(path)
    again = load_config(path)
    assert again == config
    assert again.module2.temperature == 0.5
    assert again.module3.schedule == "step"


def test_set_overrides_parse_values_as_yaml():
    config = load_config(None, ["data.split=[0.7, 0.2, 0.1]", "student.pretrained=true"])
    assert config.data.split == (0.7, 0.2, 0.1)
    assert config.student.pretrained is True


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("module2:\n  anchor_wieght: 2.0\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'module2.anchor_wieght'"):
        load_config(path)


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError, match=r"module3.a.*got 1.5"):
        load_config(None, ["module3.a=1.5"])


def test_bad_method_and_split_are_refused():
    with pytest.raises(ConfigError, match="'method'"):
        load_config(None, ["method=magic"])
    with pytest.raises(ConfigError, match="data.split"):
        load_config(None, ["data.split=[0.5, 0.5, 0.5]"])


def test_missing_config_file_points_at_flag(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; check the --config path"):
        load_config(tmp_path / "nope.yaml")


def test_override_without_equals_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["module3.epochs"])


def test_digest_depends_only_on_named_sections():
    base = Config()
    changed_stage3 = with_overrides(base, {"module3.a": 0.3})
    changed_stage1 = with_overrides(base, {"module1.epochs": 9})
    assert base.digest("module1") == changed_stage3.digest("module1")
    assert base.digest("module1") != changed_stage1.digest("module1")


def test_config_keys_lists_dotted_leaves():
    keys = config_keys()
    assert "module2.anchor_weight" in keys and "seed" in keys and "module2" not in keys


def test_invalid_yaml_is_named(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("module2: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


def test_unknown_architecture_names_its_key_and_lists_the_zoo(tiny_config):
    with pytest.raises(
        ConfigError,
        match=r"config key 'student.arch': unknown architecture; choose one of: .*resnet18",
    ):
        with_overrides(tiny_config, {"student.arch": "resnet1000"})


def test_booleans_are_not_numbers_anywhere_in_the_schema():
    for setting in ("module3.epochs=true", "module2.temperature=false", "seed=true"):
        with pytest.raises(ConfigError, match="must be a number, not true/false"):
            load_config(None, [setting])
    assert load_config(None, ["student.pretrained=true"]).student.pretrained is True


def test_folder_given_as_config_is_named_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; pass --config a YAML file"):
        load_config(tmp_path)
