"""`lynx-lite-lmms-tasks`: the lmms-eval tasks written from a shapes world by a command, its one-line errors, and the
plugin's own runner of the multiple-choice task (lmms-eval 0.7.3 cannot score it). No lmms-eval needed."""

import configparser, importlib, json, shlex
from pathlib import Path
import numpy as np
import pytest, torch
from PIL import Image
from lynx_lite.chat_format import tiny_tokenizer
from lynx_lite.lab.shapes import write_dataset
from lynx_lite.lmms_eval_plugin import LynxLite, format_choice, run_choice_task, tasks_main
from lynx_lite.model import LynxModel, configure_tokens

ROOT = Path(__file__).resolve().parent.parent
PROG = "lynx-lite-lmms-tasks"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    write_dataset(d, n_images=12, n_videos=0, seed=1, progress=False)
    return d


@pytest.fixture(scope="module")
def tasks(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    assert tasks_main([str(world), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    tok, model = tiny_tokenizer(), LynxModel.from_preset("tiny").eval()
    configure_tokens(model, tok)
    folder = tmp_path_factory.mktemp("model") / "m"
    model.save_pretrained(folder, tokenizer=tok)
    return model, tok, folder


def run(capsys, *argv) -> tuple[int, str, str]:
    "The command in this process: (exit status, stdout, stderr); argparse's exits become their status."
    capsys.readouterr()
    try:
        code = tasks_main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_console_script_is_declared():
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    scripts = dict(s.split("=", 1) for s in cfg["DEFAULT"]["console_scripts"].split())
    assert scripts["lynx-lite"] == "lynx_lite.cli:main"  # beside the main command
    module, fn = scripts[PROG].split(":")
    assert getattr(importlib.import_module(module), fn) is tasks_main
    assert "cfg.get('console_scripts','').split()" in (ROOT / "setup.py").read_text()  # what setup.py installs
    assert "'lmms_eval.models': ['lynx_lite = lynx_lite.lmms_eval_plugin:manifest']" in (ROOT / "setup.py").read_text()


def test_command_writes_the_tasks_and_prints_the_next_commands(world, tmp_path, capsys):
    out = tmp_path / "tasks"
    code, printed, err = run(capsys, world, out)
    assert (code, err) == (0, "")
    names = {"shapes_vqa.yaml", "shapes_vqa.jsonl", "shapes_mc.yaml", "shapes_mc.jsonl", "shapes_utils.py"}
    assert {p.name for p in out.iterdir()} == names
    n_mc, n_vqa = len(lines(world / "mcq.jsonl")), len(lines(world / "openvqa_images.jsonl"))
    assert len(lines(out / "shapes_mc.jsonl")) == n_mc and len(lines(out / "shapes_vqa.jsonl")) == n_vqa
    assert printed.startswith(f"wrote {out.resolve()}:\n")
    assert f"{n_vqa} open questions" in printed and f"{n_mc} multiple-choice questions" in printed
    cmds = [line.strip() for line in printed.splitlines() if line.startswith("  lmms-eval ") or PROG in line]
    assert len(cmds) == 2, printed
    lmms = shlex.split(cmds[0])
    assert lmms[lmms.index("--tasks") + 1] == "shapes_vqa"  # not shapes_vqa,shapes_mc: that run prints no table
    assert lmms[lmms.index("--include_path") + 1] == str(out.resolve())
    assert lmms[lmms.index("--model") + 1] == "lynx_lite" and "pretrained=MODEL" in lmms
    assert shlex.split(cmds[1]) == [PROG, "--run-choice", "MODEL", str(out.resolve())]
    # another name: its files, its task names, and --name in the command printed for the choice task
    code, printed, _ = run(capsys, world, tmp_path / "toys", "--name", "toys")
    assert code == 0 and (tmp_path / "toys" / "toys_utils.py").exists() and "--tasks toys_vqa " in printed
    assert printed.rstrip().endswith(f"--run-choice MODEL {(tmp_path / 'toys').resolve()} --name toys")
    assert "!function toys_utils.doc_to_text" in (tmp_path / "toys" / "toys_mc.yaml").read_text()


def test_a_relative_out_is_printed_absolute(world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # lmms-eval may run from another folder: the printed paths must not depend on this one
    code, printed, _ = run(capsys, world, "rel/tasks")
    assert code == 0 and f"--include_path {tmp_path.resolve() / 'rel/tasks'} " in printed
    assert printed.rstrip().endswith(f"--run-choice MODEL {tmp_path.resolve() / 'rel/tasks'}")


def test_the_printed_choice_command_runs(world, tiny, tmp_path, capsys):
    model, tok, folder = tiny
    out = tmp_path / "tasks"
    _, printed, _ = run(capsys, world, out)
    line = next(x for x in printed.splitlines() if x.strip().startswith(PROG))
    argv = [str(folder) if a == "MODEL" else a for a in shlex.split(line)[1:]]  # MODEL filled in, as a user does
    code, printed, err = run(capsys, *argv, "--limit", 5, "--device", "cpu")
    assert (code, err.count("error")) == (0, 0), err
    expected = run_choice_task(LynxLite(model=model, tokenizer=tok, batch_size=4), out, limit=5)
    assert printed == format_choice(expected) + "\n" and expected["n"] == 5
    assert printed.startswith("shapes_mc: acc ") and " of 5; 95% CI " in printed


def _bad_world(tmp_path: Path, world: Path, what: str) -> Path:
    "A copy of the world's two question files, broken as `what` says."
    d = tmp_path / f"bad-{what}"
    d.mkdir()
    for f in ("openvqa_images.jsonl", "mcq.jsonl"):
        (d / f).write_text((world / f).read_text())
    mc = (d / "mcq.jsonl").read_text().splitlines()
    if what == "no-mcq":
        (d / "mcq.jsonl").unlink()
    elif what == "empty-mcq":
        (d / "mcq.jsonl").write_text("\n")
    elif what == "bad-json":
        (d / "mcq.jsonl").write_text("\n".join(mc[:2] + ["{not json"] + mc[2:]) + "\n")
    elif what == "bad-letter":
        (d / "mcq.jsonl").write_text("\n".join(mc[:1] + [mc[1].replace('"answer": "', '"answer": "Z')]) + "\n")
    elif what == "no-question":
        r = json.loads(mc[0])
        del r["question"]
        (d / "mcq.jsonl").write_text(json.dumps(r) + "\n")
    return d


@pytest.mark.parametrize(
    "what, says",
    [
        ("nowhere", "no such folder: pass a shapes world"),
        ("empty-folder", "has no openvqa_images.jsonl and no mcq.jsonl"),
        ("no-mcq", "has no mcq.jsonl: not a shapes world"),
        ("empty-mcq", "mcq.jsonl holds no questions"),
        ("bad-json", "mcq.jsonl:3: not a question of a shapes world (JSONDecodeError"),
        ("bad-letter", "mcq.jsonl:2: not a question of a shapes world (ValueError"),
        ("no-question", "mcq.jsonl:1: not a question of a shapes world (KeyError"),
    ],
)
def test_writing_errors_are_one_line(world, tmp_path, capsys, what, says):
    if what == "nowhere":
        src = tmp_path / "nowhere"
    elif what == "empty-folder":
        (src := tmp_path / "empty").mkdir()
    else:
        src = _bad_world(tmp_path, world, what)
    out = tmp_path / "out"
    code, printed, err = run(capsys, src, out)
    assert (code, printed, err.count("\n")) == (2, "", 1), err
    assert err.startswith(f"{PROG}: error: ") and says in err, err
    assert not out.exists()  # nothing written from a world that is not one


def test_usage_and_run_choice_errors(world, tasks, tiny, tmp_path, capsys):
    *_, folder = tiny
    (no_config := tmp_path / "not-a-model").mkdir()
    for argv, says in [
        ((world, tmp_path / "o", "--name", "my-shapes"), "must be a Python identifier"),
        (("--run-choice", tmp_path / "no-model", tasks), "no such folder"),
        (("--run-choice", no_config, tasks), "has no config.json"),
        (("--run-choice", folder, world), "has no shapes_mc.jsonl and shapes_utils.py: write the tasks first"),
        (("--run-choice", folder, tasks, "--name", "toys"), "write the tasks first (lynx-lite-lmms-tasks WORLD"),
        (("--run-choice", folder, tasks, "--limit", 0), "limit must be at least 1"),
    ]:
        code, printed, err = run(capsys, *argv)
        assert (code, printed, err.count("\n")) == (2, "", 1), (argv, err)
        assert err.startswith(f"{PROG}: error: ") and says in err, (argv, err)
    for argv in [(), (world,), (world, tmp_path / "o", "--run-choice", folder, tasks), ("--run-choice", folder)]:
        code, printed, err = run(capsys, *argv)
        assert code == 2 and printed == "" and "usage: lynx-lite-lmms-tasks" in err, argv


class Stub:
    """An lmms model with planted scores (lower is better, as lmms-eval's `nll`): for the i-th question the best score
    goes to option `plan(i)`, and for every fourth question option 0 ties it. It keeps the requests it saw."""

    score = "nll"

    def __init__(self, plan):
        self.plan, self.task_dict, self.seen = plan, {}, []

    def loglikelihood(self, requests):
        out = []
        for r in requests:
            ctx, cont, to_visual, doc_id, task, split = r.args
            doc = self.task_dict[task][split][doc_id]
            self.seen.append((doc_id, ctx, cont, to_visual(doc)))
            j = [" " + o for o in doc["options"]].index(cont)
            best = self.plan(doc_id)
            out.append((1.0 if j == best or (j == 0 and doc_id % 4 == 0) else 2.0 + j, False))
        return out


def test_choice_runner_gives_the_independent_count(world, tasks):
    src = lines(world / "mcq.jsonl")  # the world's own questions, read here and not through the tasks
    right = ["ABCD".index(r["answer"]) for r in src]
    plan = lambda i: right[i] if i % 3 else (right[i] + 1) % 4  # right for 2 of every 3 questions
    stub = Stub(plan)
    res = run_choice_task(stub, tasks)
    scores = np.array([[1.0 if j == plan(i) or (j == 0 and i % 4 == 0) else 2.0 + j for j in range(4)]
                       for i in range(len(src))])
    hits = [int(np.argmin(s) == right[i]) for i, s in enumerate(scores)]  # lmms-eval's rule: np.argmin, first of ties
    assert 0 < sum(hits) < len(src)
    assert (res["task"], res["n"], res["correct"]) == ("shapes_mc", len(src), sum(hits))
    assert res["acc"] == pytest.approx(sum(hits) / len(src)) and res["chance"] == pytest.approx(0.25)
    assert res["preds"] == [int(np.argmin(s)) for s in scores]
    # the requests lmms-eval's construct_requests would send: per option, the bare question after the tag, " " + option
    assert len(stub.seen) == 4 * len(src)
    for k, (doc_id, ctx, cont, visual) in enumerate(stub.seen):
        r = src[doc_id]
        assert doc_id == k // 4 and ctx == "<image>\n" + r["question"] and cont == " " + r["options"][k % 4]
        assert isinstance(visual[0], Image.Image) and visual[0].size == Image.open(world / r["image"]).size
    limited = run_choice_task(Stub(plan), tasks, limit=5)
    assert (limited["n"], limited["correct"]) == (5, sum(hits[:5]))
    with pytest.raises(ValueError, match="score=nll"):
        run_choice_task(type("LogProb", (Stub,), {"score": "logprob"})(plan), tasks)
