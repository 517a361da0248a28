"""Lynx against LLaVA-1.5 as they were released, at reduced widths and depths but the real token counts and image
sizes: Lynx feeds 32 resampled tokens to the LLM (EVA-style tower at 420 px, patch 14: 901 tokens into the
resampler), LLaVA-1.5 576 patch tokens through its 2-layer MLP projector (CLIP-L-style tower at 336 px, patch 14,
the penultimate layer without CLS). Widths are the real ones divided by `--width-div` (8), depths by `--depth-div`
(4), vocabulary by 8, so each side keeps the real ratios between its tower, its connector and the LLM.

Measured in one run, each as a ratio (higher is better for Lynx):
- time to first token: a 1-token `generate`, batch 1 (the tower, the connector and the prefill of the prompt);
- decoding tokens/s: batch `--batch`, prompts of different lengths left padded, greedy, `--new-tokens` tokens;
- training step: each model's stage-2 recipe (Lynx: resampler + adapters, tower and LLM frozen; LLaVA-1.5: projector
  + the whole LLM), and LLaVA's stage 1 (projector only) as a lower bound.

    python bench/real_shapes.py [--batch 8 --text 48 --steps 3]"""

import argparse, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device, save, set_llava_trainable, timed, train_step

# the released models' sizes
EVA_G = dict(hidden=1408, layers=39, mlp=6144, heads=16, image=420, patch=14)
CLIP_L_336 = dict(hidden=1024, layers=24, mlp=4096, heads=16, image=336, patch=14)
VICUNA_7B = dict(hidden=4096, layers=32, mlp=11008, heads=32, vocab=32000)


def scaled(a):
    "The three models' sizes, widths / width_div (heads too: the real head widths), depths / depth_div."
    w, d = a.width_div, a.depth_div
    tower = lambda t: dict(
        hidden_size=t["hidden"] // w,
        intermediate_size=t["mlp"] // w,
        num_hidden_layers=max(1, round(t["layers"] / d)),
        num_attention_heads=max(1, t["heads"] // w),
        image_size=t["image"],
        patch_size=t["patch"],
    )
    llm = dict(
        vocab_size=VICUNA_7B["vocab"] // w,
        hidden_size=VICUNA_7B["hidden"] // w,
        intermediate_size=VICUNA_7B["mlp"] // w,
        num_hidden_layers=VICUNA_7B["layers"] // d,
        num_attention_heads=VICUNA_7B["heads"] // w,
        num_key_value_heads=VICUNA_7B["heads"] // w,
        max_position_embeddings=2048,
    )
    return tower(EVA_G), tower(CLIP_L_336), llm


def build(a):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    from lynx_lite.config import get_preset
    from lynx_lite.freeze import freeze_for_stage
    from lynx_lite.model import LynxModel

    eva, clip, llm = scaled(a)
    torch.manual_seed(0)
    cfg = get_preset(
        "lynx-7b",
        **{
            "vision.config": dict(get_preset("lynx-7b").vision.config, **eva),
            "llm.config": dict(llm, vocab_size=llm["vocab_size"] + 1, rms_norm_eps=1e-6, tie_word_embeddings=False),
            "llm.dtype": "float32",
            "resampler.heads": 8 // a.width_div or 1,
            "adapters.bottleneck": llm["hidden_size"] // 2,
        },
    )
    lynx = LynxModel(cfg, pretrained=False)
    freeze_for_stage(lynx, 2, verbose=False)
    llava = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=CLIPVisionConfig(**clip),
            text_config=LlamaConfig(**llm),
            image_token_index=llm["vocab_size"] - 1,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",  # drop CLS: 576 tokens
            projector_hidden_act="gelu",
        )
    )
    n_llava = (clip["image_size"] // clip["patch_size"]) ** 2
    return lynx.to(device()), llava.to(device()), n_llava, (eva, clip, llm)


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(batch=8, text=48, steps=3, new_tokens=16, width_div=8, depth_div=4).items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, default=v)
    a = ap.parse_args()
    lynx, llava, n_llava, (eva, clip, llm) = build(a)
    B, L, dev, V = a.batch, a.text, device(), llm["vocab_size"]
    img = torch.Generator().manual_seed(0)
    text = torch.randint(5, V - 2, (B, L), generator=img).to(dev)
    lengths = torch.linspace(L // 2, L, B).long()  # prompts of different lengths, left padded
    mask = (torch.arange(L)[None] >= (L - lengths)[:, None]).long().to(dev)
    text = text * mask
    pix_lynx = torch.randn(B, 3, eva["image_size"], eva["image_size"], generator=img).to(dev)
    pix_llava = torch.randn(B, 3, clip["image_size"], clip["image_size"], generator=img).to(dev)
    # LLaVA's prompt: [padding][576 image tokens][text], left padded as a whole
    rows = [
        torch.cat([torch.zeros(L - n, dtype=torch.long), torch.full((n_llava,), V - 1), text[i, L - n :].cpu()])
        for i, n in enumerate(lengths.tolist())
    ]
    llava_ids = torch.stack(rows).to(dev)
    llava_mask = (torch.arange(n_llava + L)[None] >= (L - lengths)[:, None]).long().to(dev)
    labels = torch.where(mask.bool(), text, torch.full_like(text, -100))
    labels[:, : L // 2] = -100  # the answer: the last half
    llava_labels = torch.where(llava_mask.bool(), llava_ids, torch.full_like(llava_ids, -100))
    llava_labels[:, : n_llava + L // 2] = -100

    lynx.train(), llava.train()
    train = {}
    train["lynx (stage 2)"] = timed(
        train_step(lynx, lambda: lynx(text, mask, pix_lynx, labels, loss_only=True).loss), repeat=a.steps
    )
    llava_loss = lambda: (
        llava(input_ids=llava_ids, attention_mask=llava_mask, pixel_values=pix_llava, labels=llava_labels).loss
    )
    set_llava_trainable(llava, llm=True)
    train["llava-1.5 (stage 2)"] = timed(train_step(llava, llava_loss), repeat=a.steps)
    set_llava_trainable(llava, llm=False)
    train["llava (stage 1: projector)"] = timed(train_step(llava, llava_loss), repeat=a.steps)

    lynx.eval(), llava.eval()
    gk = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    gen = {}
    with torch.no_grad():
        runs = dict(
            lynx=lambda n, b: lynx.generate(text[:b], mask[:b], pix_lynx[:b], max_new_tokens=n, min_new_tokens=n, **gk),
            llava=lambda n, b: llava.generate(
                input_ids=llava_ids[:b], attention_mask=llava_mask[:b], pixel_values=pix_llava[:b],
                max_new_tokens=n, min_new_tokens=n, **gk,
            ),
        )  # fmt: skip
        for name, fn in runs.items():
            ttft = timed(lambda: fn(1, 1), repeat=3)
            first_b = timed(lambda: fn(1, B), repeat=2)
            full_b = timed(lambda: fn(a.new_tokens, B), repeat=2)
            gen[name] = dict(ttft_s=ttft, tokens_per_s=B * (a.new_tokens - 1) / max(full_b - first_b, 1e-9))
    print(
        f"{dev}: EVA-style tower {eva['num_hidden_layers']}x{eva['hidden_size']} at {eva['image_size']} px "
        f"(901 tokens) -> 32 Lynx tokens; CLIP-style tower {clip['num_hidden_layers']}x{clip['hidden_size']} at "
        f"{clip['image_size']} px -> {n_llava} LLaVA tokens; LLM {llm['num_hidden_layers']}x{llm['hidden_size']}, "
        f"vocab {V}; batch {B}, {L} text tokens (left padded)"
    )
    for k, t in train.items():
        print(f"  train {k:<28} {B / t:8.2f} samples/s")
    for k, v in gen.items():
        print(
            f"  generate {k:<6} first token {v['ttft_s'] * 1e3:8.1f} ms   batch {B}: {v['tokens_per_s']:7.1f} tokens/s"
        )
    ratios = dict(
        ttft=gen["llava"]["ttft_s"] / gen["lynx"]["ttft_s"],
        decode_tokens_per_s=gen["lynx"]["tokens_per_s"] / gen["llava"]["tokens_per_s"],
        train_vs_llava15=train["llava-1.5 (stage 2)"] / train["lynx (stage 2)"],
        train_vs_llava_stage1=train["llava (stage 1: projector)"] / train["lynx (stage 2)"],
    )
    for k, v in ratios.items():
        print(f"ratio {k:<24} {v:.2f}x (Lynx / LLaVA-1.5, higher is better for Lynx)")
    save(
        "real_shapes",
        dict(
            args=vars(a), sizes=dict(eva=eva, clip=clip, llm=llm), seconds_per_step=train, generate=gen, ratios=ratios
        ),
    )


if __name__ == "__main__":
    main()
