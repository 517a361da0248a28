"""A run that survives a crash (issue 25, item 2): `lynx-lite eval` killed with SIGKILL in the middle of a benchmark
and run again ends with the results of a run that never stopped; other settings start a new run; a torn last line of
the answers file is dropped and asked again; two runs of the same settings do not write one file at once."""

import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.evaluate import _AnswerLog, evaluate
from lynx_lite.model import LynxModel

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "lynx_lite.cli"]
TIMING = ("seconds", "answers")  # how long a run took, and how many answers it read back: all else must agree


def same(res: dict) -> dict:
    return {k: v for k, v in res.items() if k not in TIMING}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "A copy of the shipped held-out shapes world (MMBench writes beside its TSV; nbs/data stays as it is)."
    return Path(shutil.copytree(ROOT / "nbs/data/shapes_test", tmp_path_factory.mktemp("data") / "shapes_test"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from lynx_lite.chat_format import tiny_tokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    LynxModel(get_preset("tiny")).save_pretrained(folder, tokenizer=tiny_tokenizer())
    return folder


def eval_args(model_dir, data, out, *extra):
    return [*CLI, "eval", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--bench", "pope", "mcq",
            "--limit", "6", "--batch-size", "1", "--generate", "max_new_tokens=6", *extra]  # fmt: skip


def answer_lines(folder: Path) -> int:
    "Complete answer lines on disk (the header and a line still being written not counted)."
    files = list(folder.glob("answers-*.jsonl"))
    return max(0, files[0].read_bytes().count(b"\n") - 1) if files else 0


def test_sigkill_mid_benchmark_then_rerun_equals_an_unbroken_run(model_dir, data, tmp_path):
    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    p = subprocess.Popen(eval_args(model_dir, data, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while answer_lines(killed / "mcq") < 3 and p.poll() is None and time.time() < deadline:
        time.sleep(0.002)  # until the second bench has some answers on disk
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {p.stderr.read()[-2000:]}"
    on_disk = answer_lines(killed / "mcq")
    assert (killed / "pope/results.json").exists()  # the first bench's results were written when it finished
    assert not (killed / "mcq/results.json").exists(), "the bench ended before its answers were on disk"
    assert 3 <= on_disk < 6 * 4

    rerun = subprocess.run(eval_args(model_dir, data, killed), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    whole = tmp_path / "whole"
    unbroken = subprocess.run(eval_args(model_dir, data, whole), env=env, capture_output=True, text=True, timeout=600)
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    for bench, n in (("pope", 3 * 6), ("mcq", 6 * 4)):
        resumed = json.loads((killed / bench / "results.json").read_text())
        ref = json.loads((whole / bench / "results.json").read_text())
        assert same(resumed) == same(ref) and ref["prompts"] == n
        assert resumed["answers"]["file"] == ref["answers"]["file"] and ref["answers"]["reused"] == 0
        kept = (killed / bench / resumed["answers"]["file"]).read_text()
        assert kept == (whole / bench / ref["answers"]["file"]).read_text()  # the same answers, in the same order
        assert (killed / bench / f"{bench}_predictions.jsonl").read_text() == (
            whole / bench / f"{bench}_predictions.jsonl"
        ).read_text()
    assert json.loads((killed / "pope/results.json").read_text())["answers"]["reused"] == 3 * 6  # nothing asked again
    assert json.loads((killed / "mcq/results.json").read_text())["answers"]["reused"] == on_disk  # all, and no more


class Counted:
    "A stand-in model that counts the questions it is asked; its answers depend on the question."

    def __init__(self):
        self.asked = 0

    def __call__(self, recs):
        self.asked += len(recs)
        return ["yes" if len(r.turns[-1][0]) % 2 else "no" for r in recs]


def test_other_settings_start_a_new_run(model_dir, data, tmp_path):
    from lynx_lite.loading import load

    model, tok = load(model_dir, device="cpu")
    kw = dict(limit=2, progress=False, batch_size=4)
    first = evaluate(model, tok, "mcq", data, tmp_path, max_new_tokens=2, **kw)
    again = evaluate(model, tok, "mcq", data, tmp_path, max_new_tokens=2, **kw)
    assert (first["answers"]["reused"], again["answers"]["reused"]) == (0, first["prompts"]) and same(again) == same(
        first
    )
    longer = evaluate(model, tok, "mcq", data, tmp_path, max_new_tokens=5, **kw)  # other decoding
    assert longer["answers"]["reused"] == 0 and longer["answers"]["file"] != first["answers"]["file"]
    fewer = evaluate(model, tok, "mcq", data, tmp_path, max_prompt_tokens=40, max_new_tokens=2, **kw)
    assert fewer["answers"]["reused"] == 0  # another prompt limit
    plain = evaluate(model, tok, "mcq", data, tmp_path, circular=False, max_new_tokens=2, **kw)
    assert plain["answers"]["reused"] == 0  # no CircularEval
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 0.5  # another model (the same folder name)
    changed = evaluate(model, tok, "mcq", data, tmp_path, max_new_tokens=2, **kw)
    assert changed["answers"]["reused"] == 0
    edited = tmp_path / "edited"
    shutil.copytree(data, edited, ignore=shutil.ignore_patterns("images", "videos", "mme", "llava_bench"))
    stub = Counted()
    a = evaluate(None, None, "mcq", edited, tmp_path / "s", answer_fn=stub, media_root=data, limit=2)
    lines = (edited / "mcq.jsonl").read_text().splitlines()
    (edited / "mcq.jsonl").write_text("\n".join(lines[:-1] + [lines[-1].replace("?", "? ")]) + "\n")  # not asked
    b = evaluate(None, None, "mcq", edited, tmp_path / "s", answer_fn=stub, media_root=data, limit=2)
    assert b["answers"]["reused"] == 0 and stub.asked == a["prompts"] + b["prompts"]  # the data changed
    a = evaluate(None, None, "mcq", edited, tmp_path / "s", answer_fn=stub, media_root=data, limit=2)
    assert a["answers"]["reused"] == a["prompts"]
    c = evaluate(None, None, "mcq", edited, tmp_path / "s", answer_fn=stub, media_root=data, limit=3)
    assert c["answers"]["reused"] == 0  # another limit
    d = evaluate(None, None, "mcq", edited, tmp_path / "s", answer_fn=stub, media_root=data, limit=2, resume=False)
    assert d["answers"]["reused"] == 0 and same(d) == same(a)  # told not to resume
    assert len(list((tmp_path / "s").glob("answers-*.jsonl"))) == 3  # a file per run; the old ones kept


@pytest.mark.parametrize(
    "tear, redone",
    [
        (lambda t: t[:-7], 1),  # killed in the middle of the last line
        (lambda t: t[:-1], 1),  # the last line complete but for its newline
        (lambda t: t + '{"q": "x", "a"', 0),  # a line begun after the last answer
        (lambda t: t + "\udcff\udcfe", 0),  # bytes that are not UTF-8
    ],
)
def test_a_torn_last_line_is_redone(data, tmp_path, tear, redone):
    whole = evaluate(None, None, "pope", data, tmp_path / "whole", answer_fn=Counted(), limit=4, batch_size=3)
    first = evaluate(None, None, "pope", data, tmp_path / "torn", answer_fn=Counted(), limit=4, batch_size=3)
    f = tmp_path / "torn" / first["answers"]["file"]
    f.write_bytes(tear(f.read_text()).encode("utf-8", "surrogateescape"))
    stub = Counted()
    rerun = evaluate(None, None, "pope", data, tmp_path / "torn", answer_fn=stub, limit=4, batch_size=3)
    assert (stub.asked, rerun["answers"]["reused"]) == (redone, 3 * 4 - redone) and same(rerun) == same(whole)
    assert f.read_text() == (tmp_path / "whole" / whole["answers"]["file"]).read_text()  # every line whole, in order


def test_one_run_at_a_time(data, tmp_path):
    first = evaluate(None, None, "pope", data, tmp_path, answer_fn=Counted(), limit=1)
    f = tmp_path / first["answers"]["file"]
    with _AnswerLog(f, json.loads(f.read_text().splitlines()[0])):  # another evaluation of the same run, writing
        with pytest.raises(RuntimeError, match="another evaluation of this run is writing it now"):
            evaluate(None, None, "pope", data, tmp_path, answer_fn=Counted(), limit=1)
