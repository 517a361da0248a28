"The `lynx-lite` console entry point, run as a user would."

import json, subprocess, sys, time
from lynx_lite.config import list_presets

# `lynx-lite` run by this interpreter: the test does not depend on the venv being activated (on PATH)
CLI = [sys.executable, "-c", "import sys; from lynx_lite.cli import main; sys.exit(main())"]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def test_params_lynx_7b_json():
    t = time.time()
    r = run("params", "lynx-7b", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["total"], d["trainable"], d["frozen"]) == (8_413_655_312, 688_430_224, 8_413_655_312 - 688_430_224)
    parts = d["parts"]
    assert parts["vision"] == dict(total=986_808_320, trainable=7_040, frozen=986_801_280)
    assert parts["resampler"]["trainable"] == 419_758_336 and parts["inserted"]["trainable"] == 268_664_848
    assert parts["llm"] == dict(total=6_738_423_808, trainable=0, frozen=6_738_423_808)
    print(f"lynx-lite params lynx-7b --json: {time.time() - t:.1f}s")


def test_params_table_and_errors():
    r = run("params", "tiny-lora", "--stage", "2")
    assert r.returncode == 0 and "inserted" in r.stdout and "stage 2" in r.stdout
    bad = run("params", "nope")
    assert bad.returncode == 2 and "known presets" in bad.stderr and "lynx-7b" in bad.stderr
    presets = run("presets").stdout.split()
    assert presets == sorted(list_presets()) and {"lynx-7b", "quickstart", "tiny", "tiny-lora", "tiny-xattn"} <= set(
        presets
    )
