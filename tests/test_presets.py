"""Every shipped preset loads, expands and names only registered components."""
import pytest

from genloop.loading import expand, load_raw
from genloop.reference import preset_path, presets
from genloop.builtins import check_names


@pytest.mark.parametrize("name", sorted(presets()))
def test_preset_is_valid(name):
    chains = expand(load_raw(preset_path(name)))
    assert chains
    for ch in chains:
        check_names(ch.config)
    assert presets()[name], f"preset {name} needs a first comment line saying what it is and needs"


def test_paper_presets_match_the_paper():
    guid = [c.config.generator.ddpm.guidance_scale for c in expand(load_raw(preset_path("paper-mnist")))]
    assert guid == [1.0, 0.1, 1e-10]
    for name in ("paper-flowers", "paper-birds"):
        (ch,) = expand(load_raw(preset_path(name)))
        cfg = ch.config
        assert not cfg.generator.conditional and cfg.data.image_size == 64 and cfg.sampler.steps == 20
        assert cfg.metrics.features == "inception" and {"fd", "kid", "prdc"} <= set(cfg.metrics.names)
        assert cfg.loop.generations == 10
        # the Keras DDIM example keeps the checkpoint with the best validation KID (5 sampling steps)
        assert cfg.train.select_every > 0 and cfg.train.select_steps == 5
    birds = expand(load_raw(preset_path("paper-birds")))[0].config.data
    assert birds.bbox_crop and birds.bbox_padding == 0.25  # birds cropped to their box + 25 %


def test_unknown_preset_lists_known_ones():
    from genloop.config import ConfigError

    with pytest.raises(ConfigError, match="known presets: .*default"):
        preset_path("nope")


@pytest.mark.parametrize("name", sorted(presets()))
def test_presets_that_break_the_sample_size_rule_say_so(name):
    """Inception FD (D = 2,048) on a training subset of at most 2,048 images is computed on
    N <= D samples per side (singular covariance): the preset's comments must say so."""
    from genloop.reference import preset_path as path_of
    from genloop.metrics.image_metrics import too_few_samples

    for ch in expand(load_raw(preset_path(name))):
        m, limit = ch.config.metrics, ch.config.data.limit
        if "fd" in m.names and m.features == "inception" and limit is not None:
            if too_few_samples("fd", limit, 2048, m.min_samples_warning):
                comments = "\n".join(l for l in path_of(name).read_text().splitlines() if l.lstrip().startswith("#"))
                assert "singular" in comments, f"{name}: FID on {limit} samples <= 2,048 dimensions, not said"
