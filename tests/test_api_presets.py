"""The Python API names presets as the CLI does: ``genloop.run(preset=...)`` and
``genloop.load_config(preset=...)``."""
from __future__ import annotations

import pytest

import genloop
from genloop.config import ConfigError
from genloop.loading import expand, load_raw
from genloop.reference import preset_path, presets


@pytest.mark.parametrize("name", sorted(presets()))
def test_load_config_preset_is_the_clis(name):
    """Every shipped preset resolves through the API to the chains `genloop run -p NAME` runs."""
    api = genloop.load_config(preset=name)
    cli = expand(load_raw([preset_path(name)], None))  # what cli.config_sources(-p NAME) loads
    assert api == cli
    assert len(api) >= 1


def test_preset_then_config_then_overrides_merge_in_order():
    chains = genloop.load_config({"loop": {"generations": 7}, "seeds": [0, 1]}, ["seeds=[5]"], preset="theory")
    assert {ch.config.loop.generations for ch in chains} == {7}      # the dict over the preset
    assert {ch.config.seed for ch in chains} == {5}                  # the override over both
    assert {ch.config.generator.name for ch in chains} == {"gaussian"}  # the preset's, kept
    assert len(chains) == 3                                            # its 3 interaction models x 1 seed
    assert genloop.load_config() == genloop.load_config(preset="default")


def test_run_preset_theory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = genloop.run(preset="theory", overrides=["seeds=[0]", "loop.generations=3"], report=False)
    assert (tmp_path / "runs" / "theory" / "metrics.csv").is_file()  # the CLI's default folder name
    assert len(rows) == 3 * 3
    assert len({r["chain"] for r in rows}) == 3 and {r["generation"] for r in rows} == {0, 1, 2}
    assert all(0.0 < r["variance_ratio"] < 5.0 for r in rows)
    # the same run through a config path and the CLI's list of sources gives the same numbers
    again = genloop.run([preset_path("theory")], tmp_path / "again", ["seeds=[0]", "loop.generations=3"],
                        report=False)
    key = lambda r: (r["chain"], r["generation"])  # noqa: E731
    assert [r["variance_ratio"] for r in sorted(rows, key=key)] == [r["variance_ratio"] for r in sorted(again, key=key)]


def test_errors_are_one_line():
    with pytest.raises(ConfigError) as e:
        genloop.run("theory", out_dir="unused")
    msg = str(e.value)
    assert "\n" not in msg and "preset='theory'" in msg
    with pytest.raises(ConfigError) as e:
        genloop.load_config(preset="no-such-preset")
    msg = str(e.value)
    assert "\n" not in msg and "'no-such-preset'" in msg and "theory" in msg  # names the known ones
    with pytest.raises(ConfigError) as e:
        genloop.load_config(preset=3)
    assert "\n" not in str(e.value) and "preset=3" in str(e.value)
