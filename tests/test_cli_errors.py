"`lynx-lite`'s expected failures: one line on stderr, exit status 2, no traceback (unless --debug / LYNX_LITE_DEBUG=1)."

import json, os, socket, subprocess, sys, time
import pytest, torch
import lynx_lite.errors as errors_module
import lynx_lite.loading as loading
from lynx_lite.cli import main

PAPER_IDS = ("lmsys/vicuna-7b-v1.1", "openai/clip-vit-large-patch14-336")
MAIN = "import sys; from lynx_lite.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    "An empty Hugging Face home: nothing is cached, whatever this machine has downloaded."
    return tmp_path_factory.mktemp("hf_home")


@pytest.fixture
def run(hf_home, tmp_path):
    "Run the command as a user would, in a fresh offline Python, in an empty folder."

    def run(*args, env=None):
        e = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HF_HOME", "LYNX_LITE_DEBUG")}
        e.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(hf_home), **(env or {}))
        return subprocess.run(
            [sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=300, env=e, cwd=tmp_path
        )

    return run


def one_line(code: int, out: str, err: str, *names: str) -> str:
    "The expected failure's line: exit status 2, one non-empty line on stderr, naming one of `names`, no traceback."
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, (code, err[-3000:])
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in out + err
    assert any(n in lines[0] for n in names), lines[0]
    return lines[0]


def failed(r, *names: str) -> str:
    return one_line(r.returncode, r.stdout, r.stderr, *names)


@pytest.mark.parametrize("recipe", ["paper-stage1", "paper-stage2", "qlora-1gpu"])
def test_paper_recipe_offline_stops_in_seconds(run, tmp_path, recipe):
    t = time.time()
    r = run("train", "--recipe", recipe, "max_steps=2")
    elapsed = time.time() - t
    line = failed(r, *PAPER_IDS)
    print(f"{elapsed:.1f}s\n{r.stdout}{line}")
    assert elapsed < 60
    assert line.startswith("lynx-lite train: error: lmsys/vicuna-7b-v1.1 is neither a folder here nor in the hub cache")
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in line and "pass the folder" in line and "HF_HOME" in line
    assert "Vicuna-7B LLM (lmsys/vicuna-7b-v1.1, ~" in r.stdout and "openai/clip-vit-large-patch14-336" in r.stdout
    assert list(tmp_path.iterdir()) == []  # stopped before building anything


def test_unknown_hub_id_offline(run):
    line = failed(run("chat", "--model", "some/unknown-id", "what is it?"), "some/unknown-id")
    assert "offline mode is on" in line and "pass the folder" in line


def test_empty_folder(run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = failed(run("chat", "--model", str(empty), "q"), str(empty))
    assert "needs config.json and model.safetensors" in line


def test_missing_folder(run, tmp_path):
    line = failed(run("chat", "--model", str(tmp_path / "no" / "such"), "q"), str(tmp_path / "no" / "such"))
    assert "no such folder" in line


def fake_checkpoint(folder, meta: dict):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(meta))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_older_format(run, tmp_path):
    old = fake_checkpoint(tmp_path / "old", dict(format="lynx_lite", format_version=1, config={}))
    line = failed(run("chat", "--model", str(old), "q"), str(old))
    assert "(format 1); this lynx_lite reads format 2" in line and "retrain it" in line


def test_another_format(run, tmp_path):
    other = fake_checkpoint(tmp_path / "llama", dict(model_type="llama"))
    line = failed(run("eval", "--model", str(other), "--bench", "mme", "--data", str(tmp_path)), str(other))
    assert "was not written by lynx_lite's save_pretrained: pass a folder" in line


def test_checkpoint_of_another_preset(run, tmp_path):
    from lynx_lite.config import get_preset
    from lynx_lite.model import LynxModel

    d = LynxModel.from_preset("tiny").save_pretrained(tmp_path / "tiny", trainable_only=True)
    meta = json.loads((d / "config.json").read_text())
    meta["config"] = get_preset("tiny-xattn").to_dict()  # tiny's weights, tiny-xattn's config
    (d / "config.json").write_text(json.dumps(meta))
    line = failed(run("eval", "--model", str(d), "--bench", "mme", "--data", str(tmp_path)), str(d))
    assert "does not fit the model" in line and "another preset" in line


def test_missing_training_data(run, tmp_path):
    line = failed(run("train", "--recipe", "tiny-cpu-stage1", f"data_dir={tmp_path}"), str(tmp_path))
    assert "captions.jsonl: no such file" in line


OOMS = [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 26.00 GiB"), MemoryError()]


@pytest.mark.parametrize("error", OOMS)
def test_out_of_memory_while_loading(monkeypatch, capsys, tmp_path, error):
    from lynx_lite.model import LynxModel

    def from_pretrained(path_or_id, **kw):
        raise error

    monkeypatch.setattr(LynxModel, "from_pretrained", staticmethod(from_pretrained))
    big = tmp_path / "big"
    big.mkdir()  # a folder: the loader resolves it, then the model does not fit
    code = main(["chat", "--model", str(big), "q"])
    out, err = capsys.readouterr()
    line = one_line(code, out, err, str(big))
    assert line.startswith(f"lynx-lite chat: error: out of memory while loading {big}: ")
    assert "smaller dtype" in line and "4-bit" in line and "more memory" in line


@pytest.mark.parametrize("error_name", ["GatedRepoError", "RepositoryNotFoundError"])
def test_gated_or_unknown_repo_online(monkeypatch, capsys, error_name):
    "Online, the recipe's first model is checked with `auth_check` (replaced here by one that answers as the hub does)."
    import httpx2, huggingface_hub, huggingface_hub.errors as errors

    def auth_check(repo_id, **kw):
        response = httpx2.Response(403, request=httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}"))
        raise getattr(errors, error_name)(f"403 Client Error: no access to {repo_id}", response=response)

    monkeypatch.setattr(errors_module, "_offline", lambda: None)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **kw: None)
    monkeypatch.setattr(huggingface_hub, "auth_check", auth_check)
    code = main(["train", "--recipe", "paper-stage1"])
    out, err = capsys.readouterr()
    line = one_line(code, out, err, "lmsys/vicuna-7b-v1.1")
    assert "hf auth login" in line
    if error_name == "GatedRepoError":
        assert "is gated" in line and "https://huggingface.co/lmsys/vicuna-7b-v1.1" in line


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from lynx_lite.model import LynxModel
    from lynx_lite.chat_format import tiny_tokenizer

    d = tmp_path_factory.mktemp("tiny") / "model"
    LynxModel.from_preset("tiny").save_pretrained(d, tokenizer=tiny_tokenizer())
    return d


def test_demo_port_in_use(run, tiny_checkpoint):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t = time.time()
        line = failed(run("demo", "--model", str(tiny_checkpoint), "--port", str(port)), str(port))
    assert line == f"lynx-lite demo: error: port {port} on 127.0.0.1 is in use: pass --port with a free port"
    assert time.time() - t < 60


@pytest.mark.parametrize("how", ["--debug", "LYNX_LITE_DEBUG=1"])
def test_debug_shows_the_traceback(run, how):
    args = ["chat", "--model", "some/unknown-id", "q"]
    r = run(*args, env=dict(LYNX_LITE_DEBUG="1")) if how.startswith("LYNX") else run(how, *args)
    assert r.returncode == 2
    assert "Traceback (most recent call last)" in r.stderr and "LocalEntryNotFoundError" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("lynx-lite chat: error: some/unknown-id is neither")


def test_an_unexpected_error_keeps_its_traceback(monkeypatch):
    def bug(model, *options):
        raise KeyError("a bug")

    monkeypatch.setattr(loading, "load", bug)
    with pytest.raises(KeyError, match="a bug"):
        main(["chat", "--model", "x", "q"])
