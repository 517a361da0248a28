"""Shared helpers of the benchmarks: the machine, timing (median of repeats), the measured matmul peak, results files.

Benchmarks are scripts, not tests: each prints ratios against a peer measured in the same run (so a noisy or shared
machine moves both sides together) and writes `bench/results/<name>-<device>.json`."""

from __future__ import annotations
import json, os, platform, statistics, time
from pathlib import Path
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
RESULTS = Path(__file__).parent / "results"


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine() -> dict:
    "What ran the benchmark: CPU model and cores, GPU, torch and transformers versions."
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        torch=torch.__version__,
        transformers=transformers.__version__,
    )


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat: int = 5, warmup: int = 1) -> float:
    "Median wall time of `fn()` in seconds over `repeat` runs, after `warmup` runs."
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    "Measured FLOP/s of a square matmul on this device (the denominator of MFU)."
    a, b = torch.randn(n, n, device=device(), dtype=dtype), torch.randn(n, n, device=device(), dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeat=10, warmup=3)


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{device()}.json"
    path.write_text(json.dumps(dict(machine=machine(), **result), indent=2))
    print(f"wrote {path}")
    return path


def set_llava_trainable(llava, llm: bool) -> None:
    "LLaVA's recipes: the projector trains, and with `llm=True` (LLaVA-1.5's stage 2) the whole LLM too."
    for n, p in llava.named_parameters():
        p.requires_grad = "multi_modal_projector" in n or (llm and "language_model" in n and "vision" not in n)


def train_step(model, loss_fn):
    "A function running one AdamW step of `model`'s trainable weights on `loss_fn()`."
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def run():
        loss_fn().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return run
