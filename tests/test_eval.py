"Evaluation: the MME rule and scorer on tricky and bad input, the CLI end to end, judges and metrics on known values."

import json, shutil, subprocess
from pathlib import Path
import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.judges import RuleJudge
from lynx_lite.metrics import caption_scores, mme_label, parse_choice, score_mme
from lynx_lite.model import LynxModel
from lynx_lite.records import load_mme
from lynx_lite.lab.shapes import write_dataset

EXE = shutil.which("lynx-lite")


@pytest.mark.parametrize(
    "pred, label",
    [
        ("yes", "yes"),
        ("no", "no"),
        ("Yes", "yes"),
        ("YES, it is.", "yes"),
        ("No.", "no"),
        ("no way", "no"),
        ("Nope", "no"),
        ("not", "no"),
        ("It is not there", "other"),
        ("I'd say yes", "other"),
        ("y", "other"),
        ("yes and no", "yes"),
        ("noyes", "no"),
        ("  no", "no"),
        ("\nyes", "yes"),
        ("none", "no"),
        ("", "other"),
    ],
)
def test_mme_rule(pred, label):
    assert mme_label(pred) == label


def write(d: Path, name: str, rows):
    (d / name).write_text("".join("\t".join(r) + "\n" for r in rows))


def test_score_mme_counts_acc_plus_per_image(tmp_path):
    write(
        tmp_path,
        "color.txt",
        [
            ("1.png", "q", "Yes", "Yes"),
            ("1.png", "q", "No", "no"),
            ("2.png", "q", "Yes", "No"),
            ("2.png", "q", "No", "no"),
            ("3.png", "q", "Yes", "maybe"),
            ("3.png", "q", "No", "yes"),
        ],
    )
    write(tmp_path, "numerical_calculation.txt", [("a.png", "q", "Yes", "yes"), ("a.png", "q", "No", "no")])
    s = score_mme(tmp_path)
    c = s["subtasks"]["color"]
    assert (c["acc"], c["acc_plus"]) == (pytest.approx(3 / 6), pytest.approx(1 / 3))
    assert s["perception"] == pytest.approx(100 * 0.5 + 100 / 3) and s["cognition"] == 200.0
    assert set(s["subtasks"]) == {"color", "numerical_calculation"}  # absent subtasks are left out


@pytest.mark.parametrize(
    "setup, msg",
    [
        (lambda d: None, "no MME result files"),
        (
            lambda d: write(d, "count.txt", [("1.png", "q", "Yes", "yes")] * 3),
            "3 lines; MME result files hold exactly two",
        ),
        (
            lambda d: write(d, "count.txt", [("1.png", "q", "Yes", "yes"), ("2.png", "q", "No", "no")]),
            "different images",
        ),
        (
            lambda d: (d / "count.txt").write_bytes("1.png\tq\tYes\tn\xe4\n1.png\tq\tNo\tno\n".encode("latin-1")),
            "not UTF-8",
        ),
        (
            lambda d: (d / "count.txt").write_text("1.png\tq\tYes\n1.png\tq\tNo\tno\n"),
            "count.txt:1: expected 4 tab-separated",
        ),
        (
            lambda d: write(d, "count.txt", [("1.png", "q", "Maybe", "yes"), ("1.png", "q", "No", "no")]),
            "must be Yes or No",
        ),
        (
            lambda d: write(d, "colour.txt", [("1.png", "q", "Yes", "yes"), ("1.png", "q", "No", "no")]),
            "not MME subtasks",
        ),
    ],
)
def test_score_mme_bad_input(tmp_path, setup, msg):
    setup(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=msg):
        score_mme(tmp_path)


def test_mme_data_folder_errors(tmp_path):
    write_dataset(tmp_path, n_images=4, n_videos=0, seed=0, progress=False)
    with pytest.raises(FileNotFoundError, match="no such MME subtask folder"):
        load_mme(tmp_path / "mme", subtasks=["existence", "celebrity"])
    (tmp_path / "mme/count/000001.txt").write_bytes(b"\xff\xfe broken")
    with pytest.raises(ValueError, match=r"000001\.txt: not UTF-8"):
        load_mme(tmp_path / "mme")


def test_metrics_on_known_values():
    # BLEU-4 of an exact match is 1; CIDEr ranks a closer caption higher; option letters are read as documented
    refs = {"a": ["a red circle on a white background"], "b": ["two blue squares at the top"]}
    exact = caption_scores(refs, {"a": "a red circle on a white background", "b": "two blue squares at the top"})
    assert exact["bleu4"] == pytest.approx(1.0, abs=1e-6)
    near = caption_scores(refs, {"a": "a red circle on white", "b": "two blue squares"})
    far = caption_scores(refs, {"a": "green star", "b": "one circle"})
    assert exact["cider"] > near["cider"] > far["cider"] and far["bleu4"] < 1e-6
    assert parse_choice("(B) blue", ["red", "blue", "green"]) == "B" and parse_choice("purple", ["red", "blue"]) is None
    j = RuleJudge()
    assert (
        j("q", ["bottom left"], "the bottom left corner").correct and not j("q", ["bottom left"], "top right").correct
    )


@pytest.mark.skipif(EXE is None, reason="lynx-lite is not installed")
def test_eval_and_score_cli(tmp_path, tok):
    write_dataset(tmp_path / "data", n_images=6, n_videos=2, seed=5, progress=False)
    torch.manual_seed(0)
    LynxModel(get_preset("tiny")).save_pretrained(tmp_path / "model", tokenizer=tok)
    r = subprocess.run(
        [
            EXE,
            "eval",
            "--checkpoint",
            str(tmp_path / "model"),
            "--bench",
            "mme",
            "mcq",
            "videoqa",
            "caption",
            "openvqa",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "eval"),
            "--generate",
            "max_new_tokens=4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "eval/mme/results.json").read_text())
    assert res["decoding"]["max_new_tokens"] == 4 and res["n"] == 6 * 8 and res["lynx_lite_version"]
    assert json.loads((tmp_path / "eval/videoqa/results.json").read_text())["n"] == 2 * 4
    s = subprocess.run([EXE, "score", "mme", str(tmp_path / "eval/mme/mme"), "--json"], capture_output=True, text=True)
    out = json.loads(s.stdout)
    assert set(out) == {"subtasks", "perception", "cognition"} and set(out["subtasks"]) == {
        "existence",
        "count",
        "position",
        "color",
    }
    assert out == res["metrics"]
    assert all(set(v) == {"acc", "acc_plus", "score"} for v in out["subtasks"].values())
    rep = subprocess.run(
        [
            EXE,
            "report",
            *[str(p) for p in sorted((tmp_path / "eval").glob("*/results.json"))],
            "--out",
            str(tmp_path / "rep"),
        ],
        capture_output=True,
        text=True,
    )
    assert rep.returncode == 0 and (tmp_path / "rep/mme.png").exists() and "| perception |" in rep.stdout
    bad = subprocess.run([EXE, "score", "mme", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such folder" in bad.stderr
