"""Loading params.yaml: overrides, validation messages, the resolved config."""
import json

import pytest

from synthgen.config import ConfigError, load_params, params_hash, write_resolved
from synthgen.config.loader import apply_override


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_defaults_fill_every_section(tmp_path):
    params = load_params(write(tmp_path, "data:\n  resolution: 16\n"))
    assert params.data.resolution == 16 and params.data.source == "shapes"
    assert params.sample.num_images > 0 and params.diffusion.schedule.num_timesteps > 0


def test_overrides_parse_yaml_values(tmp_path):
    params = load_params(write(tmp_path, "{}"), ["data.resolution=64", "data.val_fraction=0.25"])
    assert params.data.resolution == 64 and params.data.val_fraction == 0.25
    data = {}
    apply_override(data, "sample.class_weights={a: 1, b: 2}")
    assert data == {"sample": {"class_weights": {"a": 1, "b": 2}}}


@pytest.mark.parametrize("text,fragment", [
    ("data:\n  resolution: 512\n", "data.resolution = 512: Input should be less than or equal to 256"),
    ("data:\n  colour: red\n", "unknown key 'data.colour'"),
    ("datum: {}\n", "unknown key 'datum'"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("data: [\n", "not valid YAML"),
    ("sample:\n  class_mix: counts\n", "class_mix=counts needs sample.class_counts"),
])
def test_mistakes_become_one_line(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, text))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_params(write(tmp_path, "{}"), ["data.resolution"])


def test_missing_input_path_checked_unless_told_not_to(tmp_path):
    path = write(tmp_path, "data:\n  source: mnist\n  path: /no/such/folder\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(path)
    assert load_params(path, check_paths=False).data.path == "/no/such/folder"


def test_resolved_params_are_written_and_hash_is_stable(tmp_path):
    params = load_params(write(tmp_path, "{}"))
    written = json.loads(write_resolved(params, tmp_path / "out").read_text())
    assert written["data"]["resolution"] == params.data.resolution
    assert params_hash(params.sample) == params_hash(load_params(write(tmp_path, "{}")).sample)
    assert params_hash(params.sample) != params_hash(load_params(write(tmp_path, "{}"), ["sample.seed=9"]).sample)


def leaf_keys(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value) and key not in (
                "class_weights", "class_counts"):
            yield from leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_template_renders_every_key_with_comments_and_round_trips(tmp_path):
    import yaml

    from synthgen.config.params import Params
    from synthgen.config.template import params_yaml

    params = Params()
    text = params_yaml(params)
    assert "  resolution: 32  # output images" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path) == params
    assert set(leaf_keys(yaml.safe_load(text))) == set(leaf_keys(params.model_dump(mode="json")))


def test_project_params_yaml_names_every_key():
    """DVC reads params by key: a key missing from params.yaml would break `dvc repro`."""
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "params.yaml"
    params = load_params(path)
    assert set(leaf_keys(yaml.safe_load(path.read_text()))) == set(leaf_keys(params.model_dump(mode="json")))


def test_gpu_preset_validates():
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / "configs" / "gpu.yaml")
    assert params.data.resolution == 64 and params.autoencoder.model.downsample == 4
    assert params.sample.task_runner == "ray" and params.sample.ray_num_gpus == 1


def test_gpu_preset_names_every_key():
    """A preset copied over params.yaml must name every key too (DVC tracks params by key)."""
    from pathlib import Path

    import yaml

    from synthgen.config.params import Params

    path = Path(__file__).resolve().parents[1] / "configs" / "gpu.yaml"
    assert set(leaf_keys(yaml.safe_load(path.read_text()))) == set(leaf_keys(Params().model_dump(mode="json")))


def test_a_partial_training_section_overrides_only_the_keys_it_names_of_the_stage_defaults(tmp_path):
    from synthgen.config.autoencoder import DEFAULT_TRAIN

    params = load_params(write(tmp_path, "autoencoder:\n  train: {steps: 7}\n"))
    assert params.autoencoder.train == DEFAULT_TRAIN.model_copy(update={"steps": 7})
    assert params.evaluate.gate.max_fd_ratio == 1.5  # a section without stage defaults keeps its class's


def test_key_dumps_leave_out_exactly_the_unkeyed_fields():
    params = load_params("params.yaml")
    runtime = {"batch_size", "encode_workers", "cpu_threads", "task_runner", "max_workers", "ray_address",
               "ray_num_gpus", "ray_num_cpus"}
    card_only = {"license"}  # only the dataset card shows it
    assert set(params.sample.model_dump()) - set(params.sample.key_dump()) == runtime | card_only
    assert set(params.autoencoder.model_dump()) - set(params.autoencoder.key_dump()) == {"train"}
    assert set(params.diffusion.model_dump()) - set(params.diffusion.key_dump()) == {"train", "preview"}
    changed = params.sample.model_copy(update={"batch_size": 7, "max_workers": 9})
    assert changed.key_dump() == params.sample.key_dump()


def test_derived_unet_fields_come_from_the_data_and_a_disagreeing_user_value_is_named():
    from synthgen.config.diffusion import UNetConfig

    placeholder = UNetConfig()  # class defaults are placeholders: replaced without complaint
    derived = placeholder.derived_from_data(4, 16, 12)
    assert derived == {"in_channels": 4, "sample_size": 16, "num_classes": 12}
    assert placeholder.disagreements(derived) == []
    user = UNetConfig(sample_size=32, channel_mult=(1, 2), attention_resolutions=(16,), num_classes=0)
    derived = user.derived_from_data(4, 16, 12)
    assert derived["num_classes"] == 0  # unconditional stays unconditional
    assert user.disagreements(derived) == ["sample_size = 16 (params: 32)"]
