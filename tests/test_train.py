"""Training: exact resume after SIGKILL (alone and under two processes), DDP and FSDP2 over gloo, both stages from the
command line, accumulation, bf16, gradient checkpointing and evaluation hooks."""

import json, os, shutil, signal, socket, subprocess, sys
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from lynx_lite.config import get_preset
from lynx_lite.lab.shapes import write_dataset
from lynx_lite.model import LynxModel
from lynx_lite.chat_format import encode_batch
from lynx_lite.train import get_recipe, train

# the command line through this interpreter: nothing depends on how pytest was started or on the PATH
CLI = "import sys; from lynx_lite.cli import main; sys.exit(main())"
# a crash at a known point: the run kills itself with SIGKILL once step argv[2] is done (between two checkpoints)
CRASH = """import os, signal, sys
from lynx_lite.train import TrainConfig, train
stop = int(sys.argv[2])
train(TrainConfig.from_file(sys.argv[1]), progress=False,
      hooks=[lambda model, step: step == stop and os.kill(os.getpid(), signal.SIGKILL)])
"""


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
        [sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        **kw,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(tmp_path, *args):
    "`lynx-lite ARGS` in two processes over gloo (`accelerate launch --cpu --num_processes 2` would start ONE)."
    script = tmp_path / "lynx_lite_cli.py"
    script.write_text(CLI)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--main_process_port", str(free_port()), str(script), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "ACCELERATE_USE_CPU": "1"}
    )


def final_weights(run_dir):
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("step-*"))
    return load_file(ckpts[-1] / "trainable.safetensors")


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def losses(run_dir):
    return json.loads((Path(run_dir) / "summary.json").read_text())["losses"]


# LoRA dropout on: the RNG changes every step, so a resume that did not restore it would not be exact
DROPOUT = dict(model="tiny-lora", model_overrides={"adapters.lora_dropout": 0.2})


def test_resume_after_sigkill_is_exact(tmp_path, shapes):
    # two data-loader workers prefetch past the crash: the resume must start from what was consumed
    kw = dict(max_steps=12, save_every=4, eval_every=1, num_workers=2, **DROPOUT)
    r = run("train", "--config", str(config(tmp_path, shapes, "full", **kw)))
    assert r.returncode == 0, r.stderr[-2000:]

    killed = config(tmp_path, shapes, "killed", **kw)
    log = tmp_path / "killed.log"  # a file, not a pipe: the orphaned loader workers must not hold the test up
    with open(log, "w") as f:
        p = subprocess.run([sys.executable, "-c", CRASH, str(killed), "6"], stdout=f, stderr=f, timeout=600)
    assert p.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert [c.name for c in (tmp_path / "killed" / "checkpoints").glob("step-*")] == ["step-0000004"]
    assert not (tmp_path / "killed" / "summary.json").exists()  # it really died mid-run, after step 6
    r = run("train", "--config", str(killed), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "at step 4" in r.stdout + r.stderr
    assert same_weights(final_weights(tmp_path / "full"), final_weights(tmp_path / "killed"))
    assert losses(tmp_path / "full") == losses(tmp_path / "killed")  # the same curve, step for step


def test_two_processes_ddp_over_gloo_and_resume(tmp_path, shapes):
    cfg = config(tmp_path, shapes, "ddp", max_steps=6, save_every=3, **DROPOUT)
    r = launch_two_processes(tmp_path, "train", "--config", str(cfg))
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert s["processes"] == 2
    assert len(s["rank_digests"]) == 2 and len(set(s["rank_digests"])) == 1  # both ranks hold the same weights
    assert s["losses"][-1] < s["losses"][0]
    # the same run resumed from its step-3 checkpoint, in two processes again, ends exactly where it ended
    resumed = config(tmp_path, shapes, "resumed", max_steps=6, save_every=3, **DROPOUT)
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "ddp/checkpoints/step-0000003", tmp_path / "resumed/checkpoints/step-0000003")
    r = launch_two_processes(tmp_path, "train", "--config", str(resumed), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "at step 3" in r.stdout + r.stderr
    assert same_weights(final_weights(tmp_path / "ddp"), final_weights(tmp_path / "resumed"))
    assert losses(tmp_path / "ddp") == losses(tmp_path / "resumed")


def test_stage1_then_stage2_from_the_command_line(tmp_path, shapes):
    over = [f"data_dir={shapes}", "tracker=none", "max_steps=40", "save_every=20", "batch_size=8"]
    r1 = run("train", "--recipe", "tiny-cpu-stage1", f"out_dir={tmp_path / 's1'}", *over)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = run(
        "train", "--recipe", "tiny-cpu-stage2", f"out_dir={tmp_path / 's2'}", f"init_from={tmp_path / 's1'}", *over
    )
    assert r2.returncode == 0, r2.stderr[-2000:]
    for stage in ("s1", "s2"):
        curve = losses(tmp_path / stage)
        assert sum(curve[-8:]) / 8 < sum(curve[:8]) / 8 - 0.2, (stage, curve)
    assert (tmp_path / "s2" / "model" / "model.safetensors").exists()
    # stage 2 starts from stage 1's weights: a 0-step stage 2 saves exactly the weights it starts from
    stage1 = final_weights(tmp_path / "s1")
    fresh = {n: p for n, p in LynxModel(get_preset("tiny")).named_parameters() if n in stage1}
    assert stage1.keys() == fresh.keys() and not any(torch.equal(stage1[k], fresh[k]) for k in stage1)
    cfg = dict(data_dir=str(shapes), tracker="none", max_steps=0, init_from=str(tmp_path / "s1"))
    train(get_recipe("tiny-cpu-stage2", out_dir=str(tmp_path / "s2-start"), **cfg), progress=False)
    start = load_file(tmp_path / "s2-start" / "model" / "model.safetensors")
    assert all(torch.equal(start[k], stage1[k]) for k in stage1)


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


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shapes):
    "4 steps of batch 8 in this process, with an evaluation hook every 2 steps; and a maker of variants of it."
    tmp = tmp_path_factory.mktemp("variants")

    def cfg(name, **kw):
        base = dict(data_dir=str(shapes), out_dir=str(tmp / name), tracker="none", init_from=None, max_steps=4)
        return get_recipe("tiny-cpu-stage2", **{**base, "batch_size": 8, "save_every": 4, **kw})

    calls = []

    def hook(model, step):
        calls.append((step, type(model).__name__, model.training))
        model.eval()  # a hook that evaluates leaves the model in eval mode: training must go on as before

    summary = train(cfg("ref", eval_every=2), progress=False, hooks=[hook])
    return dict(summary=summary, weights=final_weights(tmp / "ref"), calls=calls, cfg=cfg, dir=tmp)


def test_eval_every_hooks_fire(reference):
    # every 2nd step, with the model itself, in train mode again after the first hook left it in eval mode
    assert reference["calls"] == [(2, "LynxModel", True), (4, "LynxModel", True)]


def test_grad_accum_equals_the_larger_batch(reference):
    "Batches of 4 accumulated twice make the update of batches of 8 (each supervised token weighs the same)."
    acc = reference["cfg"]("accum", batch_size=4, grad_accum=2)
    s = train(acc, progress=False)
    ref, got = reference["weights"], final_weights(acc.out_dir)
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5, msg=k)
    torch.testing.assert_close(s["losses"], reference["summary"]["losses"], rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_trains_the_same(reference):
    "Each decoder layer runs again in the backward pass (its MLP is entered twice a step), and the run is the same."
    from lynx_lite.adapters import decoder_layers

    calls = []

    def count_from_step_2(model, step):
        if step == 2:
            for layer in decoder_layers(model.llm):
                layer.mlp.register_forward_pre_hook(lambda *a: calls.append(1))
        else:
            calls.append(len(calls))  # steps 3 and 4 of 4 layers

    ckpt = reference["cfg"]("ckpt", gradient_checkpointing=True, eval_every=2)
    s = train(ckpt, progress=False, hooks=[count_from_step_2])
    assert calls[-1] == 2 * 4 * 2  # without checkpointing: 2 * 4
    assert s["losses"] == reference["summary"]["losses"]
    ref, got = reference["weights"], final_weights(ckpt.out_dir)
    assert ref.keys() == got.keys() and all(torch.allclose(got[k], ref[k], rtol=0, atol=1e-6) for k in ref)


def test_bf16_autocast_step(reference):
    "bf16 autocast (another process: accelerate fixes the precision once per process): finite, close, not identical."
    cfg = reference["cfg"]("bf16", mixed_precision="bf16")
    path = reference["dir"] / "bf16.yaml"
    path.write_text(cfg.to_yaml())
    r = run("train", "--config", str(path))
    assert r.returncode == 0, r.stderr[-2000:]
    got, ref = losses(cfg.out_dir), reference["summary"]["losses"]
    assert all(torch.isfinite(torch.tensor(got)))
    assert got != ref  # autocast was on ...
    assert abs(got[0] - ref[0]) < 0.02 * ref[0], (got, ref)  # ... and the first loss (same weights) is within 2%


def test_fsdp2_shards_lynx_on_cpu(tmp_path):
    """torch's FSDP2 `fully_shard` over gloo on CPU (accelerate's FSDP plugin falls back to DDP there): each rank holds
    half of each weight, and after 10 steps its half is that of one process taking the same steps."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    r = subprocess.run(
        [*cmd, str(Path(__file__).parent / "fsdp2_worker.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    outs = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [o["rank"] for o in outs] == [0, 1] and all(o["world"] == 2 for o in outs)
    shards = [load_file(tmp_path / f"rank{i}.safetensors") for i in range(2)]
    w = "resampler.layers.0.1.1.weight"  # the resampler FF up-projection, (128, 64)
    assert shards[0][w].shape == shards[1][w].shape == (64, 64)  # each rank holds half of the weight

    # one process, the same 10 steps: the mean of the two ranks' losses (FSDP averages the ranks' gradients)
    from lynx_lite.chat_format import tiny_tokenizer

    torch.manual_seed(0)
    m = LynxModel(get_preset("tiny")).train()
    batch = encode_batch(tiny_tokenizer(), ["what colour is it?", "how many shapes?"], ["red", "two"])
    pix = [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(rank)) for rank in range(2)]
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    single = []
    for _ in range(10):
        per_rank = [m(**batch, pixel_values=p).loss for p in pix]
        (sum(per_rank) / 2).backward()
        opt.step()
        opt.zero_grad()
        single.append([x.item() for x in per_rank])
    for rank in range(2):
        torch.testing.assert_close(outs[rank]["losses"], [s[rank] for s in single], rtol=1e-4, atol=1e-4)
    trained = {n: p.detach() for n, p in m.named_parameters() if p.requires_grad}
    assert set(shards[0]) == set(shards[1]) == set(trained)
    for n, p in trained.items():
        torch.testing.assert_close(torch.cat([shards[0][n], shards[1][n]]), p, rtol=1e-3, atol=1e-4, msg=n)
    assert outs[0]["losses"][-1] < 0.5 * outs[0]["losses"][0]
