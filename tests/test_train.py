"Training: exact resume after SIGKILL, two processes over gloo, both stages from the command line."

import json, os, shutil, signal, subprocess, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from lynx_lite.lab.shapes import write_dataset
from lynx_lite.train import get_recipe

EXE = shutil.which("lynx-lite")
ACCELERATE = shutil.which("accelerate")
pytestmark = pytest.mark.skipif(EXE is None, reason="lynx-lite is not installed (pip install -e .)")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    write_dataset(d, n_images=64, n_videos=8, seed=3, progress=False)
    return d


def config(tmp_path, shapes, name, **kw):
    cfg = get_recipe(
        "tiny-cpu-stage2",
        init_from=None,
        data_dir=str(shapes),
        out_dir=str(tmp_path / name),
        tracker="none",
        batch_size=4,
        **kw,
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(cfg.to_yaml())
    return path


def run(*args, env=None, **kw):
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}, **kw
    )


def final_weights(run_dir):
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("step-*"))
    return load_file(ckpts[-1] / "trainable.safetensors")


def test_resume_after_sigkill_is_exact(tmp_path, shapes):
    steps = 40
    full = config(tmp_path, shapes, "full", max_steps=steps, save_every=4)
    r = run("train", "--config", str(full))
    assert r.returncode == 0, r.stderr[-2000:]

    killed = config(tmp_path, shapes, "killed", max_steps=steps, save_every=4)
    p = subprocess.Popen([EXE, "train", "--config", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "killed" / "checkpoints" / "step-0000004"
    t0 = time.time()
    while not first.exists() and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()  # it really died mid-run
    r = run("train", "--config", str(killed), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout + r.stderr
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads((tmp_path / "full" / "summary.json").read_text())
    sb = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert sa["losses"] == sb["losses"]  # the same curve, step for step


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate CLI not installed")
def test_two_processes_ddp_over_gloo(tmp_path, shapes):
    cfg = config(tmp_path, shapes, "ddp", max_steps=6, save_every=6)
    # `accelerate launch --cpu --num_processes 2` silently starts ONE process; this starts two (MULTI_CPU, gloo)
    r = subprocess.run(
        [
            ACCELERATE,
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "29533",
            EXE,
            "train",
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ACCELERATE_USE_CPU": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert s["processes"] == 2
    assert len(s["rank_digests"]) == 2 and len(set(s["rank_digests"])) == 1  # both ranks hold the same weights
    assert s["losses"][-1] < s["losses"][0]


def test_stage1_then_stage2_from_the_command_line(tmp_path, shapes):
    over = [f"data_dir={shapes}", "tracker=none", "max_steps=40", "save_every=20", "batch_size=8"]
    r1 = run("train", "--recipe", "tiny-cpu-stage1", f"out_dir={tmp_path / 's1'}", *over)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = run(
        "train", "--recipe", "tiny-cpu-stage2", f"out_dir={tmp_path / 's2'}", f"init_from={tmp_path / 's1'}", *over
    )
    assert r2.returncode == 0, r2.stderr[-2000:]
    for stage in ("s1", "s2"):
        losses = json.loads((tmp_path / stage / "summary.json").read_text())["losses"]
        assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8 - 0.2, (stage, losses)
    assert (tmp_path / "s2" / "model" / "model.safetensors").exists()


def test_bad_samples_never_stop_a_run(tmp_path, shapes):
    bad = tmp_path / "bad.jsonl"
    good = Path(shapes, "captions.jsonl").read_text().splitlines()[:12]
    bad.write_text(
        "\n".join(good + ['{"image": "nope.png", "caption": "a red circle"}', "{broken", '{"image": "x.png"}']) + "\n"
    )
    cfg = get_recipe(
        "tiny-cpu-stage1",
        out_dir=str(tmp_path / "run"),
        tracker="none",
        max_steps=8,
        save_every=8,
        batch_size=4,
        sources=[dict(name="c", format="pairs", path=str(bad), media_root=str(shapes))],
    )
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    r = run("train", "--config", str(tmp_path / "c.yaml"))
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["skipped"]["malformed_json"] == 1 and s["skipped"]["bad_record"] == 1 and s["skipped"]["missing_file"] >= 1
    assert s["steps"] == 8


def test_fsdp2_shards_lynx_on_cpu(tmp_path):
    "accelerate's FSDP plugin falls back to DDP on CPU, but torch's FSDP2 `fully_shard` shards LynxModel over gloo."
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found")
    r = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "--master_port",
            "29547",
            str(Path(__file__).parent / "fsdp2_worker.py"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    outs = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [o["rank"] for o in outs] == [0, 1] and all(o["world"] == 2 for o in outs)
    assert all(o["local"] == [64, 64] and o["full"] == [128, 64] for o in outs)  # each rank holds half of the weight
    assert outs[0]["digest"] == outs[1]["digest"]  # and after 10 steps both see the same full weights
    assert all(o["losses"][-1] < 0.5 * o["losses"][0] for o in outs)
