"The ablation runner from the command line, shortened (`--smoke`): two studies, two seeds, shared baseline, reuse."

import json, subprocess, sys

CLI = [sys.executable, "-m", "lynx_lite.cli"]  # the command line, through the running interpreter (never skipped)


def test_ablate_smoke_two_studies_two_seeds(tmp_path):
    cmd = [
        *CLI,
        "ablate",
        "--smoke",
        "--studies",
        "fusion",
        "text-only data",
        "--seeds",
        "0",
        "1",
        "--out",
        str(tmp_path / "ab"),
        "--quickstart-dir",
        str(tmp_path / "qs"),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "ab" / "ablations.json").read_text())["rows"]
    assert sorted({(x["study"], x["variant"]) for x in rows}) == [
        ("fusion", "cross-attention"),
        ("fusion", "prefix"),
        ("text-only data", "with"),
        ("text-only data", "without"),
    ]
    assert sorted(x["seed"] for x in rows) == [0] * 4 + [1] * 4
    assert len(list((tmp_path / "ab" / "runs").iterdir())) == 3 * 2  # the paper's choice is one run per seed, shared
    assert "| fusion | prefix (paper) |" in r.stdout and "| 95% CI | n |" in r.stdout
    for x in rows:  # the counts behind each accuracy, as the table's intervals need them
        assert x["accuracy"] == x["correct"] / x["n"] and x["text"] == x["text_correct"] / x["text_n"]
        assert sum(x["per_task_n"].values()) == x["n"] == 8 + 2 * 4  # --smoke: eval_limit 8 image + 8 video questions
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "ab" / "runs").glob("*/done.json")}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert (
        again.returncode == 0
        and {p: p.stat().st_mtime_ns for p in (tmp_path / "ab" / "runs").glob("*/done.json")} == mtimes
    )


def test_ablate_rejects_an_unknown_study(tmp_path):
    r = subprocess.run(
        [*CLI, "ablate", "--smoke", "--studies", "colour", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "unknown studies ['colour']" in r.stderr and "fusion" in r.stderr
