"""Components: options registered with their component, every name checked before a run
folder exists, plugins (config key, --plugin, entry points, workers)."""
import csv
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import genloop.builtins  # noqa: F401
from genloop.cli import main
from genloop.config import ConfigError, DataConfig, GeneratorConfig, LoopConfig, MetricsConfig, add_group, add_options, groups_of, opt
from genloop.loading import dump_yaml, from_dict, load_raw, to_dict
from genloop.reference import reference

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- options


def test_component_options_are_groups_of_their_own_and_the_old_keys_still_work():
    assert set(groups_of(GeneratorConfig)) >= {"ddpm", "gmm", "kde", "gpt", "mlp", "unet", "linear"}
    assert set(groups_of(DataConfig)) >= {"gaussian", "zipf-markov", "folder", "pretrained"}
    assert set(groups_of(LoopConfig)) >= {"curate", "mix", "fresh", "verify", "schedule"}
    assert set(groups_of(MetricsConfig)) >= {"kid", "prdc", "text", "inception", "onset"}
    cfg = from_dict(load_raw(None, ["generator.gmm.components=7", "data.zipf-markov.exponent=1.5", "generator.ngram.order=2"]))
    assert (cfg.generator.gmm.components, cfg.data.group("zipf-markov").exponent, cfg.generator.group("ngram").order) == (7, 1.5, 2)
    assert cfg.data.zipf_exponent == 1.5  # code written before reads the flat key (with a note)
    old = from_dict(load_raw(None, ["generator.components=7", "generator.order=2", "data.zipf_exponent=1.25",
                                    "loop.curate_threshold=0.5", "metrics.kid_subset_size=10"]))  # old keys: aliases
    assert (old.generator.gmm.components, old.generator.ngram.order) == (7, 2)
    assert (old.data.group("zipf-markov").exponent, old.loop.curate.threshold, old.metrics.kid.subset_size) == (1.25, 0.5, 10)
    ref = reference()
    for key in ("generator.gmm.components", "generator.gmm.covariance_type", "data.folder.bbox_padding", "generator.gpt.heads",
                "generator.mlp.width", "generator.gpt.width", "generator.ddpm.guidance_scale", "data.gaussian.dim",
                "loop.curate.threshold", "loop.schedule.kind", "metrics.kid.subset_size", "metrics.onset.tolerance"):
        assert f"| `{key}` |" in ref
    # bounds and choices still checked, with one-line messages naming the key
    with pytest.raises(ConfigError, match=r"^generator.gmm.components: 0 is out of range \(must be >= 1\)$"):
        from_dict(load_raw(None, ["generator.gmm.components=0"]))
    with pytest.raises(ConfigError, match=r"^generator.componentz: unknown key"):
        load_raw(None, ["generator.componentz=3"])


def test_a_resolved_config_yaml_loads_back(tmp_path):
    raw = load_raw(None, ["generator.name=gmm", "generator.gmm.components=2", "data.name=gaussian", "data.gaussian.dim=3"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(raw))
    assert to_dict(from_dict(load_raw(path))) == to_dict(from_dict(raw))


def test_a_component_name_taken_twice_is_an_error():
    @dataclass
    class Clash:
        width: int = opt(3, "a width of its own: fine, it is generator.conditional.width")

    with pytest.raises(ValueError, match="'conditional' is already a key of GeneratorConfig"):
        add_group(GeneratorConfig, "name", "conditional", Clash, "generator 'conditional'")
    with pytest.raises(TypeError, match=r"add_options\(GeneratorConfig, Clash\) is gone; register the options with the component"):
        add_options(GeneratorConfig, Clash, "generator 'clash'")  # the old way: one line says what to do


# --------------------------------------------------------------------------- names before the run folder


@pytest.mark.parametrize("override, fragment", [
    ("data.name=nope", "data.name: unknown dataset 'nope'"),
    ("data.tokenizer=nope", "data.tokenizer: unknown tokenizer 'nope'"),
    ("generator.name=nope", "generator.name: unknown generator 'nope'"),
    ("generator.network=nope", "generator.network: unknown network 'nope'"),
    ("generator.schedule=nope", "generator.schedule: unknown noise schedule 'nope'"),
    ("sampler.name=nope", "sampler.name: unknown sampler 'nope'"),
    ("loop.interaction=nope", "loop.interaction: unknown interaction model 'nope'"),
    ("metrics.names=[classifier,nope]", "metrics.names: unknown metric 'nope'"),
    ("metrics.features=bogus", "metrics.features: unknown feature extractor 'bogus'"),
    ("train.select_features=bogus", "train.select_features: unknown feature extractor 'bogus'"),
])
def test_every_name_is_checked_before_the_run_folder_is_made(tmp_path, capsys, override, fragment):
    out = tmp_path / "run"
    assert main(["run", "--no-progress", "-o", str(out), override]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "(known: " in err and len(err.splitlines()) == 1
    assert not out.exists()


# --------------------------------------------------------------------------- plugins

PLUGIN = '''
"""A generator that lives outside genloop: resamples training points, scaled."""
from dataclasses import dataclass

import numpy as np

from genloop.config import opt
from genloop.data import ImageSet
from genloop.generators import GENERATORS


@dataclass
class ShrinkOptions:
    shrink: float = opt(1.0, "shrink: factor applied to each resampled training point", gt=0.0)


@GENERATORS.register("shrink", options=ShrinkOptions)
class Shrink:
    def __init__(self, ctx):
        self.ctx, self.x = ctx, None

    def fit(self, train):
        self.x = train.images
        return {"train_loss": 0.0}

    def sample(self, labels, n):
        rng = np.random.default_rng(self.ctx.seed)
        pick = self.x[rng.integers(0, len(self.x), n)] * self.ctx.config.generator.shrink
        return ImageSet(pick.astype(np.float32))

    def state_dict(self):
        return {}
'''


def _plugin_env(tmp_path: Path) -> dict:
    (tmp_path / "myplug.py").write_text(textwrap.dedent(PLUGIN))
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    return env


def _genloop(args: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genloop.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_a_plugin_generator_runs_in_two_workers(tmp_path):
    env = _plugin_env(tmp_path)
    (tmp_path / "exp.yaml").write_text(textwrap.dedent("""
        plugins: [myplug]
        data: {name: gaussian, count: 60, dim: 2}
        generator: {name: shrink, shrink: 0.5}
        loop: {generations: 2}
        metrics: {names: [variance_ratio]}
        seeds: [0, 1]
    """))
    out = tmp_path / "run"
    res = _genloop(["run", "--no-progress", "-c", "exp.yaml", "-o", str(out), "--workers", "2"], env, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 4
    # every generation shrinks its training points by 0.5: variance ratio ~ 0.25 ** (g + 1)
    for r in rows:
        want = 0.25 ** (int(r["generation"]) + 1)
        assert 0.6 * want < float(r["variance_ratio"]) < 1.4 * want, r
    saved = (out / "config.yaml").read_text()
    assert "plugins: [myplug]" in saved and "shrink: 0.5" in saved
    # the same with --plugin instead of the config key; the folder's config.yaml loads back
    res = _genloop(["config", "--plugin", "myplug", "-c", str(out / "config.yaml")], env, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "shrink: 0.5" in res.stdout


def test_an_installed_package_registers_through_the_entry_point_group(tmp_path):
    env = _plugin_env(tmp_path)
    info = tmp_path / "myplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[genloop.plugins]\nshrink = myplug\n")
    res = _genloop(["config", "generator.name=shrink", "generator.shrink=0.25"], env, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "shrink: 0.25" in res.stdout and "name: shrink" in res.stdout
    ref = _genloop(["config", "--reference"], env, tmp_path).stdout
    assert "| `generator.shrink.shrink` | float | `1.0` | shrink: factor" in ref


def test_a_missing_plugin_is_one_line_naming_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--no-progress", "-o", str(out), "--plugin", "no_such_genloop_plugin"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "plugins: cannot import module 'no_such_genloop_plugin'" in err
    assert not out.exists()
    assert main(["config", "plugins=[no_such_genloop_plugin.sub]"]) == 2
    assert "'no_such_genloop_plugin.sub'" in capsys.readouterr().err


OLD_WAY = '''
"""Components written the way of earlier versions: options dataclasses whose fields were flat keys
of their family's section, read from the section."""
from dataclasses import dataclass

import numpy as np

from genloop.config import opt
from genloop.data import DATASETS, ImageSet, split_holdout
from genloop.loop.interactions.base import INTERACTIONS, Interaction, Pool, take
from genloop.metrics import METRICS


@dataclass
class OldBlobsOptions:
    blob_level: float = opt(5.0, "oldblobs: mean of every coordinate")


@DATASETS.register("oldblobs", options=OldBlobsOptions)
def load_oldblobs(cfg, cache_dir=None):
    rng = np.random.default_rng(cfg.split_seed)
    x = cfg.blob_level + rng.standard_normal((cfg.count, 2)).astype(np.float32)
    return split_holdout(ImageSet(x.reshape(cfg.count, 2, 1, 1)), cfg.test_fraction, cfg.split_seed)


@dataclass
class OldMeanOptions:
    oldmean_scale: float = opt(1.0, "oldmean: the mean is multiplied by this", gt=0.0)


@METRICS.register("oldmean", options=OldMeanOptions)
class OldMean:
    def __init__(self, ctx):
        self.scale = ctx.config.metrics.oldmean_scale

    def __call__(self, fake, model=None):
        return {"oldmean": self.scale * float(fake.images.mean())}


@dataclass
class OldHalfOptions:
    oldhalf_real: float = opt(0.5, "oldhalf: fraction of real items in each later training set", ge=0.0, le=1.0)


@INTERACTIONS.register("oldhalf", options=OldHalfOptions)
class OldHalf(Interaction):
    def next_pool(self, generation, history, rng):
        train = self.real.train
        k = int(round(self.config.loop.oldhalf_real * len(train)))
        synth = take(history.samples(generation - 1), len(train) - k, rng, like=train)
        return Pool.concat([take(Pool.real(train), k, rng, like=train), synth])
'''


def test_a_plugin_written_the_old_way_still_runs(tmp_path):
    """Options registered with @REGISTRY.register(name, options=...) whose fields were flat section
    keys: the flat keys set them (aliases), the components read them from their section as before,
    and the saved config holds them in the components' groups (in a process of its own: the
    plugin's components stay out of this one's registries)."""
    (tmp_path / "oldway_plugin.py").write_text(textwrap.dedent(OLD_WAY))
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    out = tmp_path / "run"
    res = _genloop(["run", "--no-progress", "-o", str(out), "--plugin", "oldway_plugin", "data.name=oldblobs",
                    "data.count=200", "data.blob_level=7", "generator.name=gaussian", "generator.conditional=false",
                    "metrics.names=[oldmean]", "metrics.oldmean_scale=2", "loop.interaction=oldhalf",
                    "loop.oldhalf_real=0.25", "loop.generations=2", "generator.ddpm.guidance_scale=1.0", "device=cpu",
                    "--threads", "1"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "data.blob_level is an old key; it sets data.oldblobs.blob_level here" in res.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and abs(float(rows[0]["oldmean"]) - 14.0) < 0.5  # 2 x the mean 7 of the blobs
    saved = (out / "config.yaml").read_text()
    assert "oldblobs: {blob_level: 7}" in saved and "oldhalf: {oldhalf_real: 0.25}" in saved
