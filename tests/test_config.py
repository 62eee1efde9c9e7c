import pytest
import yaml

from genloop.config import Config, ConfigError
from genloop.loading import diff, dump_yaml, expand, from_dict, load_raw, parse_override, to_dict
from genloop.reference import preset_path, presets, reference


def test_defaults_round_trip():
    raw = load_raw()
    cfg = from_dict(raw)
    assert cfg == Config()
    assert from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg


def test_override_types_and_yaml_1e_minus_10():
    key, value = parse_override("generator.ddpm.guidance_scale=1e-10")
    assert key == "generator.ddpm.guidance_scale"
    cfg = from_dict(load_raw(overrides=["generator.ddpm.guidance_scale=1e-10", "loop.generations=3"]))
    assert cfg.generator.ddpm.guidance_scale == 1e-10 and cfg.loop.generations == 3


@pytest.mark.parametrize("override, fragment", [
    ("generator.guidanc_scale=1", "generator.guidanc_scale: unknown key"),
    ("foo=1", "foo: unknown key"),
    ("generator.ddpm.guidance_scale=strong", "generator.ddpm.guidance_scale: 'strong' is not a number"),
    ("generator.guidance_scale=strong", "generator.ddpm.guidance_scale: 'strong' is not a number"),  # an old key
    ("loop.generations=-1", "loop.generations: -1 is out of range"),
    ("generator.ddpm.label_dropout=1.5", "generator.ddpm.label_dropout: 1.5 is out of range (must be <= 1.0)"),
    ("loop.generations=2.5", "loop.generations: 2.5 is not an integer"),
    ("train.lr_decay=step", "train.lr_decay: 'step' is not allowed"),
    ("generator.conditional=maybe", "generator.conditional: 'maybe' is not a boolean"),
    ("noequals", "must look like key=value"),
])
def test_bad_values_name_key_value_and_rule(override, fragment):
    with pytest.raises(ConfigError) as err:
        expand(load_raw(overrides=[override]))
    assert fragment in str(err.value)


def test_unknown_key_in_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"train.stepz: unknown key"):
        load_raw(p)


def test_grid_expansion_one_chain_per_value_and_seeds():
    raw = load_raw(overrides=["generator.ddpm.guidance_scale=[1.0,0.1,1e-10]", "seeds=[0,1]"])
    chains = expand(raw)
    assert len(chains) == 6
    assert [c.config.generator.ddpm.guidance_scale for c in chains[:2]] == [1.0, 1.0]
    assert sorted({c.config.seed for c in chains}) == [0, 1]
    assert len({c.id for c in chains}) == 6
    assert chains[0].varied == {"generator.guidance_scale": 1.0, "seed": 0}


def test_list_valued_field_is_not_an_axis_unless_list_of_lists():
    assert len(expand(load_raw(overrides=["generator.unet.channel_mult=[1,2]"]))) == 1
    assert len(expand(load_raw(overrides=["generator.unet.channel_mult=[[1,2],[1,2,4]]"]))) == 2


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="beta_end"):
        from_dict(load_raw(overrides=["generator.linear.beta_start=0.1", "generator.linear.beta_end=0.01"]))
    with pytest.raises(ConfigError, match="sampler.steps"):
        from_dict(load_raw(overrides=["generator.ddpm.timesteps=10", "sampler.steps=20"]))


def test_diff_names_changed_keys():
    a, b = load_raw(), load_raw(overrides=["loop.generations=3"])
    assert diff(a, b) == ["loop.generations"]


def test_presets_and_reference():
    assert "default" in presets()
    raw = load_raw(preset_path("default"))
    assert [c.config.generator.ddpm.guidance_scale for c in expand(raw)] == [1.0, 0.1, 1e-10]
    ref = reference()
    assert "`generator.ddpm.guidance_scale`" in ref and "`loop.generations`" in ref


def test_docs_config_reference_is_current():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "reference.md").read_text()
    assert reference() in doc, "docs/reference.md is stale: regenerate it with `python docs/gen_reference.py`"
