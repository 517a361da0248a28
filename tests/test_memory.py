"""The memory planner (`17b_memory`): its activations and peaks against a real CPU step counted by another mechanism
(torch's profiler), the plans it is for (QLoRA on one 24 GB GPU, stage 2 on 8 GPUs with ZeRO-3) offline, the preflight
line, and the quickstart's rows of the README's table (a lab preset, which the core notebook does not import)."""

import math, socket, time
import pytest, torch
import bitsandbytes.functional as bnbF
import lynx_lite.lab.quickstart as qs  # registers the lab's `quickstart` preset
from lynx_lite.config import get_preset
from lynx_lite.memory import (
    GiB,
    measure_step,
    nf4_bytes,
    plan,
    planned_model,
    preflight_memory,
    profile_cpu_step,
    readme_table,
    resolve,
)
from lynx_lite.train import get_recipe

SETTINGS = [  # on top of batch 4 x 32 text tokens, 8 of them answers
    ("tiny", dict(batch_size=2)),
    ("tiny", dict(batch_size=8)),
    ("tiny", dict(gradient_checkpointing=True)),
    ("tiny", dict(lora_r=8, stage=2)),
    ("tiny-lora", dict(stage=2, gradient_checkpointing=True)),
    ("tiny-xattn", dict()),
    ("tiny-xattn", dict(gradient_checkpointing=True, mixed_precision="bf16")),
    ("tiny", dict(frames=3)),
    ("tiny", dict(frames=4, mixed_precision="bf16")),
    ("quickstart", dict()),
    ("quickstart", dict(mixed_precision="bf16", gradient_checkpointing=True)),
    ("quickstart", dict(batch_size=2, text_len=96, answer_len=40, frames=2)),
]


IDS = [f"{p}-{'-'.join(f'{k}={v}' for k, v in s.items()) or 'base'}" for p, s in SETTINGS]


@pytest.mark.parametrize("preset,settings", SETTINGS, ids=IDS)
def test_plan_matches_a_real_step(preset, settings):
    "The planner's activations kept for backward and its step peak, within 10% of a real step's profiler counts."
    cfg, s, _ = resolve(preset, **{**dict(batch_size=4, text_len=32, answer_len=8), **settings})
    planned = measure_step(planned_model(cfg, s), s, optimizer=False)
    real = profile_cpu_step(cfg, s)
    kept = sum(planned.activations.values())
    print(f"\n{preset} {settings}: kept {kept:,} planned / {real['activations']:,} measured; "
          f"peak {planned.peak:,} planned / {real['peak']:,} measured")
    assert abs(kept - real["activations"]) <= 0.1 * real["activations"]
    assert abs(planned.peak - real["peak"]) <= 0.1 * real["peak"]


@pytest.fixture
def no_network(monkeypatch):
    "Any connection fails: the planner must need no download."

    def refuse(*args, **kwargs):
        raise OSError("the planner tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_qlora_and_zero3_plans_offline(no_network):
    "The plans the planner is for, in seconds on a CPU, from configs alone."
    start = time.time()
    qlora = plan("qlora-1gpu", gpu="24GB")
    zero3 = plan("paper-stage2", gpus=8, strategy="zero3", gpu="80GB")
    seconds = time.time() - start
    print(f"\nboth plans in {seconds:.0f} s")
    assert qlora.fits and zero3.fits and qlora.largest_batch >= 4
    assert qlora.dtypes["llm"]["nf4"] > 3 * GiB and qlora.parts["llm"]["grads"] == 0
    assert zero3.totals["weights"] < qlora.totals["weights"] / 3  # an eighth of every weight per GPU
    assert seconds < 300  # about 20 s on a quiet 2-core CPU


def test_nf4_bytes_are_bitsandbytes():
    for shape in [(64, 64), (96, 100), (7, 9)]:
        w = torch.randn(shape, dtype=torch.bfloat16)
        q, st = bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
        stored = [q, st.code, st.absmax, st.offset, st.state2.absmax, st.state2.code]
        assert sum(t.nbytes for t in stored) == nf4_bytes(math.prod(shape))


def test_preflight_line():
    assert preflight_memory(get_recipe("tiny-cpu-stage1"), 24 * GiB) is None
    line = preflight_memory(get_recipe("qlora-1gpu"), 16 * GiB)
    print("\n" + line)
    assert line.startswith("lynx-7b, stage 2: a step needs") and "batch_size=" in line and "\n" not in line


def test_quickstart_rows():
    "The README table's rows for the quickstart on SmolLM2-135M (`pretrained_llm_config`), built from its config."
    qc = qs.pretrained_llm_config()
    overrides = {**qs.PRETRAINED_LLM, "llm.name_or_path": qc.llm}
    common = dict(model=qc.preset, model_overrides=overrides, batch_size=qc.batch_size,
                  mixed_precision=qc.mixed_precision, train_max_length=qc.train_max_length)
    stages = {f"quickstart + SmolLM2-135M, stage {n}": get_recipe(f"tiny-cpu-stage{n}", **common) for n in (1, 2)}
    model = {"quickstart + SmolLM2-135M": get_preset(qc.preset, **overrides)}
    table = readme_table(recipes=(), models=(), train_extra=stages, generate_extra=model)
    print("\n" + table)
    assert table.count("| quickstart + SmolLM2-135M") == 4 and "batch 16 × 64 tokens" in table
