"""Model FLOPs utilisation of a LynxModel training step against this machine's measured matmul peak.

Model FLOPs per step: 2·N·T for the forward pass of every token T through the N parameters it meets, and 4·N·T for
the backward pass of the parts gradients flow through (activations and weights of trained parts; activations only
for frozen parts behind a trained one), following the usual 6·N·T accounting; the frozen tower needs no backward.
Attention scores are included (2·2·L²·d per layer, forward).

    python bench/mfu.py [--preset quickstart --batch 16 --dtype float32]"""

import argparse, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device, matmul_peak, save, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--text", type=int, default=48)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    a = ap.parse_args()
    from lynx_lite.config import get_preset
    import lynx_lite.lab.quickstart  # noqa: F401  (registers the `quickstart` preset)
    from lynx_lite.freeze import freeze_for_stage
    from lynx_lite.model import LynxModel

    dtype = getattr(torch, a.dtype)
    torch.manual_seed(0)
    cfg = get_preset(a.preset)
    model = LynxModel(cfg).to(device())
    freeze_for_stage(model, 2, verbose=False)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    B, L, S = a.batch, a.text, cfg.vision.image_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, cfg.llm.config["vocab_size"] - 1, (B, L), generator=g).to(device())
    pix = torch.randn(B, 3, S, S, generator=g).to(device())

    def step():
        with torch.autocast(device(), dtype=dtype, enabled=dtype != torch.float32):
            loss = model(input_ids=ids, pixel_values=pix, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sec = timed(step, repeat=5, warmup=2)
    n = lambda m: sum(p.numel() for p in m.parameters())
    with torch.no_grad():
        N_vis = model.vision(pix[:1]).shape[1]
    Q = cfg.resampler.num_queries
    T = Q + L
    d_llm, n_layers = model.llm.config.hidden_size, model.llm.config.num_hidden_layers
    vt = model.vision.model.config
    tower = 2 * n(model.vision.model) * N_vis * B + 2 * 2 * N_vis**2 * vt.hidden_size * vt.num_hidden_layers * B
    resampler = 6 * n(model.resampler) * (N_vis + Q) * B  # cross-attention reads every patch feature
    llm_params = n(model.llm) - model.llm.get_input_embeddings().weight.numel()
    llm = (
        6 * llm_params * T * B + 3 * 2 * 2 * T**2 * d_llm * n_layers * B
    )  # frozen weights still pass gradients through
    flops = tower + resampler + llm
    peak = matmul_peak(dtype)
    mfu = flops / sec / peak
    print(f"{a.preset}, batch {B}, {N_vis} patch tokens, {Q} visual + {L} text tokens, {a.dtype} on {device()}")
    print(
        f"  step {sec * 1e3:.1f} ms; model FLOPs {flops / 1e9:.2f} G per step "
        f"({tower / flops:.0%} tower, {resampler / flops:.0%} resampler, {llm / flops:.0%} LLM)"
    )
    print(f"  achieved {flops / sec / 1e9:.1f} GFLOP/s; measured {a.dtype} matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"MFU: {mfu:.1%}")
    save(
        f"mfu-{a.preset}-{a.dtype}",
        dict(preset=a.preset, batch=B, text=L, dtype=a.dtype, step_s=sec, flops=flops, peak=peak, mfu=mfu),
    )


if __name__ == "__main__":
    main()
