"`lynx-lite check-data` and `train --check-data`: every planted problem found, named by file and line, right exit code."

import json, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
CLI = [sys.executable, "-c", "import sys; from lynx_lite.cli import main; sys.exit(main())"]


def cli(*args, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture
def world(tmp_path):
    w = tmp_path / "w"
    shutil.copytree(ROOT / "nbs" / "data" / "shapes", w)
    return w


def plant(world: Path) -> dict:
    "One of each problem; returns {reason: (file, line)} of what was planted."
    caps = world / "captions.jsonl"
    lines = caps.read_text().splitlines()
    lines[4] = lines[4][:20]  # line 5: torn
    lines[6] = json.dumps({"image": "images/missing.png", "caption": "a red circle"})  # line 7: missing image
    lines[8] = json.dumps({"image": "images/000008.png"})  # line 9: no caption
    lines.append(lines[0])  # a duplicate of line 1
    caps.write_text("\n".join(lines) + "\n")
    (world / "images/000010.png").write_bytes(b"not a png")  # line 11's image: undecodable
    (world / "videos/000200.mp4").write_bytes(b"")  # the first video's record: empty file
    return {
        "malformed_json": 5,
        "missing_file": 7,
        "bad_record": 9,
        "corrupt_image": 11,
        "empty_file": 201,
        "duplicate": len(lines),
    }


def test_every_planted_problem_is_found_with_its_line(world):
    planted = plant(world)
    r = cli("check-data", "--data", str(world / "captions.jsonl"), "--json")
    assert r.returncode == 1, r.stderr
    found = {(p["reason"], p["line"]) for s in json.loads(r.stdout)["sources"] for p in s["problems"]}
    assert set(planted.items()) <= found, (planted, found)
    assert {reason for reason, _ in found} == set(planted)  # and nothing else


def test_table_names_file_and_line_and_strict_fails_on_warnings(world):
    caps = world / "captions.jsonl"
    caps.write_text(caps.read_text() + caps.read_text().splitlines()[0] + "\n")  # only a duplicate: a warning
    r = cli("check-data", "--data", str(caps))
    assert r.returncode == 0 and f"warning: {caps}:221: the same record as line 1" in r.stdout, r.stdout
    assert cli("check-data", "--data", str(caps), "--strict").returncode == 1


def test_token_limits_under_the_recipe(world):
    r = cli("check-data", "--recipe", "tiny-cpu-stage2", f"data_dir={world}", "model_overrides={text.max_length: 30}",
            "--json")  # fmt: skip
    assert r.returncode == 1, r.stderr
    counts = json.loads(r.stdout)["sources"][0]["counts"]
    assert counts.get("too_long", 0) + counts.get("turns_dropped", 0) > 0, counts


def test_train_check_data_stops_before_training(world, tmp_path):
    plant(world)
    out = tmp_path / "run"
    args = ["--recipe", "tiny-cpu-stage1", "--check-data", f"data_dir={world}", f"out_dir={out}", "max_steps=2"]
    r = cli("train", *args)
    assert r.returncode == 2 and "the data has errors" in r.stderr.strip().splitlines()[-1], r.stderr
    assert "malformed_json" in r.stdout and not out.exists()  # the table, then nothing trained


def test_a_missing_source_is_one_problem(world):
    r = cli("check-data", "--recipe", "tiny-cpu-stage1", f"data_dir={world / 'nowhere'}", "--json")
    (src,) = json.loads(r.stdout)["sources"]
    assert r.returncode == 1 and src["counts"] == {"unreadable": 1}
    assert "no such annotation file" in src["problems"][0]["detail"]
