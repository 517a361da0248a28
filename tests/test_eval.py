"""Evaluation: the MME rule and scorer on tricky and bad input, the CLI end to end, judges and metrics on known values,
the Wilson interval against hand-computed values."""

import json, shutil, subprocess
from pathlib import Path
import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.judges import RuleJudge
from lynx_lite.metrics import caption_scores, mme_label, parse_choice, score_mme, wilson_interval
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


# 95% Wilson intervals worked out by hand (z = 1.96, z^2 = 3.8416; d = 1 + z^2/n, centre = (p + z^2/2n)/d,
# half = (z/d)·sqrt(p(1-p)/n + z^2/4n^2)):
#   0/10:   d = 1.38416, centre = 0.19208/1.38416 = 0.138770 = half              -> [0, 0.277540]
#   5/10:   centre 0.5, half = 1.416021·sqrt(0.025 + 0.009604) = 0.263410      -> [0.236590, 0.763410]
#   40/40:  d = 1.09604, centre = 1.04802/1.09604 = 0.956188, half = 1.788256·0.0245 = 0.043812 -> [0.912376, 1]
#   1/10:   centre = 0.29208/1.38416 = 0.211016, half = 1.416021·sqrt(0.009 + 0.009604) = 0.193140
#                                                                              -> [0.017876, 0.404156]
#   156/240 (the quickstart's colour figure): d = 1.016007, centre = (0.65 + 0.008003)/1.016007 = 0.647637,
#           half = 1.929121·sqrt(0.00094792 + 0.00001667) = 0.059914          -> [0.587722, 0.707551]
@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (0, 10, 0.0, 0.277540),
        (5, 10, 0.236590, 0.763410),
        (40, 40, 0.912376, 1.0),
        (1, 10, 0.017876, 0.404156),
        (156, 240, 0.587722, 0.707551),
    ],
)
def test_wilson_interval_hand_computed(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)
    assert lo <= k / n <= hi


def test_wilson_interval_edges():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(40, 40)[1] == 1.0  # exact ends, not 1e-17 inside
    lo, hi = wilson_interval(3, 10)
    assert wilson_interval(7, 10) == (pytest.approx(1 - hi), pytest.approx(1 - lo))  # symmetric in k <-> n - k
    assert wilson_interval(300, 1000)[1] - wilson_interval(300, 1000)[0] < hi - lo  # more questions: narrower
    assert wilson_interval(0, 10, z=2.576)[1] > wilson_interval(0, 10)[1]  # 99% is wider than 95%
    for k, n, msg in [(0, 0, "at least one question"), (11, 10, "not a proportion"), (-1, 10, "not a proportion")]:
        with pytest.raises(ValueError, match=msg):
            wilson_interval(k, n)


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
    assert (c["n"], c["n_images"]) == (6, 3)
    assert (c["acc_ci95"], c["acc_plus_ci95"]) == (list(wilson_interval(3, 6)), list(wilson_interval(1, 3)))
    assert s["perception"] == pytest.approx(100 * 0.5 + 100 / 3) and s["cognition"] == 200.0
    assert set(s["subtasks"]) == {"color", "numerical_calculation"}  # absent subtasks are left out


@pytest.mark.parametrize(
    "setup, msg",
    [
        (lambda d: None, "no MME result files"),
        (lambda d: (d / "count.txt").write_text("\n"), "count.txt: no result lines"),
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
    video = json.loads((tmp_path / "eval/videoqa/results.json").read_text())
    right = [json.loads(l)["correct"] for l in (tmp_path / "eval/videoqa/videoqa_predictions.jsonl").open()]
    assert video["n"] == video["metrics"]["n"] == len(right) == 2 * 4 and video["metrics"]["correct"] == sum(right)
    assert video["metrics"]["ci95"] == list(wilson_interval(sum(right), len(right)))
    assert sum(v["n"] for v in video["metrics"]["per_class"].values()) == 2 * 4
    mcq = json.loads((tmp_path / "eval/mcq/results.json").read_text())["metrics"]
    assert mcq["n"] == 6 and mcq["ci95"] == list(wilson_interval(mcq["correct"], 6))
    s = subprocess.run([EXE, "score", "mme", str(tmp_path / "eval/mme/mme"), "--json"], capture_output=True, text=True)
    out = json.loads(s.stdout)
    assert set(out) == {"subtasks", "perception", "cognition"} and set(out["subtasks"]) == {
        "existence",
        "count",
        "position",
        "color",
    }
    assert out == res["metrics"]
    assert all(
        set(v) == {"acc", "acc_plus", "score", "n", "acc_ci95", "n_images", "acc_plus_ci95"}
        and (v["n"], v["n_images"]) == (12, 6)
        for v in out["subtasks"].values()
    )
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
    assert rep.stdout.count("| n | 95% CI |") == 5  # one table per bench, one run each
    lo, hi = res["metrics"]["subtasks"]["count"]["acc_ci95"]
    assert f"| count acc | {res['metrics']['subtasks']['count']['acc']:.3f} | 12 | [{lo:.3f}, {hi:.3f}] |" in rep.stdout
    bad = subprocess.run([EXE, "score", "mme", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such folder" in bad.stderr
