"""Options per component: groups in the YAML, old flat keys as aliases, saved configs of the
old layout, identities that do not move, and the order of the checks."""
import logging

import pytest
import yaml

import genloop.builtins  # noqa: F401
from genloop.config import ConfigError
from genloop.groups import _NOTED
from genloop.loading import defaults, expand, from_dict, identity_dict, identity_diff, load_raw, to_dict
from genloop.loop.experiment import chain_key
from genloop.groups import groups_of
from genloop.migrate import flat_dict
from genloop.reference import preset_path


def test_each_component_has_its_own_width():
    cfg = from_dict(load_raw(None, ["generator.mlp.width=64", "generator.gpt.width=96", "generator.unet.width=32"]))
    g = cfg.generator
    assert (g.mlp.width, g.gpt.width, g.unet.width) == (64, 96, 32)
    assert "width" not in {f for f in to_dict(g) if not isinstance(to_dict(g)[f], dict)}
    assert g.options() is g.ddpm and g.options("network") is g.mlp and g.options("schedule") is g.linear


@pytest.mark.parametrize("overrides, key, value", [
    (["generator.width=64"], ("mlp", "width"), 64),
    (["generator.name=gpt", "generator.width=96"], ("gpt", "width"), 96),
    (["generator.width=96", "generator.name=gpt"], ("gpt", "width"), 96),  # resolved by the final selection
    (["generator.network=unet", "generator.width=32", "generator.channel_mult=[1,2]"], ("unet", "channel_mult"), [1, 2]),
    (["generator.guidance_scale=0.5"], ("ddpm", "guidance_scale"), 0.5),
    (["generator.beta_end=0.03"], ("linear", "beta_end"), 0.03),
    (["sampler.eta=0.5"], None, 0.5),
    (["data.name=gaussian", "data.dim=3"], ("data", "gaussian", "dim"), 3),
    (["data.gaussian_mean=2"], ("data", "gaussian", "mean"), 2.0),
    (["data.tokenizer_path=m"], ("data", "pretrained", "path"), "m"),
    (["loop.interaction=curate", "loop.curate_threshold=0.5"], ("loop", "curate", "threshold"), 0.5),
    (["loop.synthetic_fraction=[0.1,0.2]"], ("loop", "schedule", "fraction"), [0.1, 0.2]),
    (["loop.fresh_reserve=0.3"], ("loop", "schedule", "reserve"), 0.3),
    (["metrics.names=[kid,prdc]", "metrics.kid_subset_size=10", "metrics.k=3"], ("metrics", "kid", "subset_size"), 10),
    (["metrics.onset_tolerance=0.2"], ("metrics", "onset", "tolerance"), 0.2),
    (["metrics.inception_weights=w.pth"], ("metrics", "inception", "weights"), "w.pth"),
])
def test_old_keys_are_aliases_resolved_by_the_selected_component(overrides, key, value, caplog):
    _NOTED.clear()  # each old key is noted once per process
    with caplog.at_level(logging.WARNING):
        raw = load_raw(None, overrides)
    if key is not None and len(key) == 3:  # data, loop, metrics: the raw config (a list may be a grid axis)
        assert raw[key[0]][key[1]][key[2]] == value
    elif key is None:
        assert from_dict(raw).sampler.ddim.eta == value
    else:
        assert getattr(from_dict(raw).generator.group(key[0]), key[1]) == value
    assert any("is an old key" in r.getMessage() for r in caplog.records)


def test_an_ambiguous_old_key_fails_in_one_line_naming_the_new_keys():
    with pytest.raises(ConfigError) as exc:
        load_raw(None, ["generator.name=[ddpm,gpt]", "generator.width=64"])
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1 and "generator.mlp.width" in msg and "generator.gpt.width" in msg


def test_an_old_grid_key_keeps_chain_ids_and_setting_names():
    old = expand(load_raw(None, ["generator.guidance_scale=[1.0,0.1]", "loop.generations=1"]))
    new = expand(load_raw(None, ["generator.ddpm.guidance_scale=[1.0,0.1]", "loop.generations=1"]))
    assert [c.id for c in old] == [c.id for c in new] == ["c00_guidance_scale=1", "c01_guidance_scale=0.1"]
    assert [c.varied for c in new] == [{"generator.guidance_scale": 1.0}, {"generator.guidance_scale": 0.1}]
    assert [chain_key(c) for c in old] == [chain_key(c) for c in new]


def test_identity_is_the_flat_layout_of_earlier_versions():
    flat = identity_dict(from_dict(load_raw(None, ["generator.mlp.width=64"])))
    g = flat["generator"]
    assert g["width"] == 64 and g["guidance_scale"] == 1.0 and g["beta_end"] == 0.02 and "mlp" not in g
    assert g["components"] == 4 and g["heads"] == 4  # every component's keys, flat, as before


@pytest.mark.parametrize("preset", ["default", "text", "paper-mnist", "paper-shumailov-cpu", "theory", "safe-gaussian",
                                    "safe-brackets", "safe-categorical", "shapes", "text-ngram", "paper-birds"])
def test_a_saved_config_of_the_old_layout_migrates_with_the_same_chains(preset, caplog):
    new_raw = load_raw(preset_path(preset), ["loop.generations=1"])
    old_raw = flat_dict(new_raw)  # what an earlier version wrote into config.yaml
    old_raw = yaml.safe_load(yaml.safe_dump(old_raw))
    assert "ddpm" not in old_raw["generator"] and "schedule" not in old_raw["loop"] and "kid" not in old_raw["metrics"]
    assert "gaussian" not in old_raw["data"] and "onset_tolerance" in old_raw["metrics"]
    _NOTED.clear()
    with caplog.at_level(logging.WARNING):
        old_chains = expand(old_raw)
    new_chains = expand(new_raw)
    assert [c.id for c in old_chains] == [c.id for c in new_chains]
    assert [chain_key(c) for c in old_chains] == [chain_key(c) for c in new_chains]
    assert [identity_dict(c.config) for c in old_chains] == [identity_dict(c.config) for c in new_chains]
    for o, n in zip(old_chains, new_chains):  # the components in use get the same options
        for sec in ("data", "generator", "loop", "metrics"):
            os_, ns = getattr(o.config, sec), getattr(n.config, sec)
            used = [c for c in ns.active() if c in groups_of(type(ns))]
            assert [os_.group(c) for c in used] == [ns.group(c) for c in used]
    assert identity_diff(old_raw, new_raw) == []
    assert any("flat layout of earlier versions" in r.getMessage() for r in caplog.records)


def test_name_checks_run_first_then_the_components_own_checks():
    # an unknown network and a bad schedule: the name is reported (its own step, first)
    with pytest.raises(ConfigError, match=r"^generator.network: unknown network 'nope'"):
        from_dict(load_raw(None, ["generator.network=nope", "generator.linear.beta_end=1e-5"]))
    with pytest.raises(ConfigError, match=r"^generator.linear.beta_end: 1e-05 must be larger than generator.linear.beta_start"):
        from_dict(load_raw(None, ["generator.linear.beta_end=1e-5"]))
    with pytest.raises(ConfigError, match=r"^generator.gpt.width: 30 is not a multiple of generator.gpt.heads \(4\)"):
        from_dict(load_raw(None, ["generator.name=gpt", "generator.gpt.width=30", "data.name=zipf-markov"]))
    with pytest.raises(ConfigError, match=r"^sampler.steps: 50 exceeds generator.ddpm.timesteps \(20\)"):
        from_dict(load_raw(None, ["generator.ddpm.timesteps=20", "sampler.steps=50"]))
    # a component not in use is not checked
    from_dict(load_raw(None, ["generator.name=gmm", "data.name=gaussian", "generator.gpt.width=30"]))


def test_lineage_overrides_take_old_and_new_keys():
    base = ["loop.interaction=ecosystem", "data.name=gaussian", "generator.name=gmm"]
    old = from_dict(load_raw(None, base + ["loop.lineages=[{components: 2}, {components: 3}]"]))
    new = from_dict(load_raw(None, base + ["loop.lineages=[{gmm: {components: 2}}, {gmm: {components: 3}}]"]))
    assert old.loop.lineages == new.loop.lineages == [{"gmm": {"components": 2}}, {"gmm": {"components": 3}}]
    assert identity_dict(old) == identity_dict(new)
    assert identity_dict(new)["loop"]["lineages"] == [{"components": 2}, {"components": 3}]


def test_defaults_group_every_registered_component():
    d = defaults()
    assert d["generator"]["mlp"] == {"width": 256, "depth": 4}
    assert d["sampler"]["ddim"] == {"eta": 0.0} and d["sampler"]["ddpm"] == {"variance": "posterior"}
