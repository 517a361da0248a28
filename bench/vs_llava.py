"""LynxModel vs transformers' LlavaForConditionalGeneration on the same vision tower, the same LLM and the same
number of visual tokens: training-step throughput (each model in its instruction-tuning recipe, and LLaVA with its
LLM frozen too), then generation (time to first token, decoding tokens/s).

- Lynx, stage 2: tower and LLM frozen; resampler (queries = LLaVA's patch count) and adapters trained;
  `+ cache` also serves the frozen tower's features from `FeatureCache` (every image seen before, as from epoch 2 on).
- LLaVA-1.5, stage 2: tower frozen; projector and the whole LLM trained.
- LLaVA, LLM frozen: tower and LLM frozen, projector trained (the cheapest LLaVA step, a lower bound).

    python bench/vs_llava.py [--batch 8 --text 64 --steps 5]"""

import argparse, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device, save, set_llava_trainable, timed, train_step


def build(a):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    from lynx_lite.config import get_preset
    from lynx_lite.freeze import freeze_for_stage
    from lynx_lite.model import LynxModel

    vis = dict(
        hidden_size=a.vision_hidden,
        intermediate_size=4 * a.vision_hidden,
        num_hidden_layers=a.vision_layers,
        num_attention_heads=a.vision_hidden // 64,
        image_size=a.image,
        patch_size=a.patch,
    )
    llm = dict(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=int(a.hidden * 8 / 3) // 64 * 64,
        num_hidden_layers=a.layers,
        num_attention_heads=a.hidden // 64,
        num_key_value_heads=a.hidden // 64,
        max_position_embeddings=2048,
    )
    n_vis = (a.image // a.patch) ** 2
    torch.manual_seed(0)
    lynx = LynxModel(
        get_preset(
            "tiny",
            **{
                "vision.image_size": a.image,
                "vision.config": vis,
                "vision.drop_cls": True,
                "llm.config": llm,
                "resampler.num_queries": n_vis,
                "resampler.heads": 8,
                "resampler.head_dim": 64,
                "adapters.bottleneck": a.hidden // 4,
                "text.max_length": 4096,
            },
        )
    )
    freeze_for_stage(lynx, 2, verbose=False)
    llava = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=CLIPVisionConfig(**vis),
            text_config=LlamaConfig(**llm),
            image_token_index=a.vocab - 1,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
        )
    )
    return lynx.to(device()), llava.to(device()), n_vis


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(
        batch=8,
        text=64,
        steps=5,
        new_tokens=32,
        image=224,
        patch=16,
        vision_hidden=384,
        vision_layers=6,
        hidden=768,
        layers=8,
        vocab=8192,
    ).items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, default=v)
    a = ap.parse_args()
    from lynx_lite.vision import FeatureCache

    lynx, llava, n_vis = build(a)
    B, L, dev = a.batch, a.text, device()
    g = torch.Generator().manual_seed(0)
    text = torch.randint(5, a.vocab - 2, (B, L), generator=g).to(dev)
    pix = torch.randn(B, 3, a.image, a.image, generator=g).to(dev)
    labels = text.clone()
    labels[:, : L // 2] = -100  # the answer half
    llava_ids = torch.cat([torch.full((B, n_vis), a.vocab - 1, device=dev), text], 1)
    llava_labels = torch.cat([torch.full((B, n_vis), -100, device=dev), labels], 1)

    lynx.train()
    llava.train()
    lynx_step = train_step(
        lynx, lambda: lynx(input_ids=text, pixel_values=pix, labels=labels, loss_only=True).loss
    )  # as `train` calls it
    llava_step = lambda: llava(input_ids=llava_ids, pixel_values=pix, labels=llava_labels).loss
    res = {}
    res["lynx"] = timed(lynx_step, repeat=a.steps)
    lynx.vision.cache = FeatureCache()
    lynx_step()  # fill the cache (the first epoch)
    res["lynx + cache"] = timed(lynx_step, repeat=a.steps)
    lynx.vision.cache = None
    set_llava_trainable(llava, llm=True)
    res["llava-1.5 (LLM trained)"] = timed(train_step(llava, llava_step), repeat=a.steps)
    set_llava_trainable(llava, llm=False)
    res["llava (LLM frozen)"] = timed(train_step(llava, llava_step), repeat=a.steps)
    trainable = {"lynx": sum(p.numel() for p in lynx.parameters() if p.requires_grad)}
    print(
        f"{dev}: batch {B}, {n_vis} visual tokens + {L} text tokens; "
        f"tower {a.vision_layers}x{a.vision_hidden}, LLM {a.layers}x{a.hidden}, vocab {a.vocab}"
    )
    base = res["llava-1.5 (LLM trained)"]
    for k, t in res.items():
        print(f"  {k:<26} {B / t:8.2f} samples/s   {base / t:5.2f}x LLaVA-1.5")
    # generation: greedy, batch 1, `new_tokens` tokens, no early stop
    lynx.eval()
    llava.eval()
    gk = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    one, pix1, ids1 = text[:1, : L // 2], pix[:1], llava_ids[:1, : n_vis + L // 2]
    gen = {}
    with torch.no_grad():
        for name, fn in (
            ("lynx", lambda n: lynx.generate(one, None, pix1, max_new_tokens=n, min_new_tokens=n, **gk)),
            (
                "llava",
                lambda n: llava.generate(input_ids=ids1, pixel_values=pix1, max_new_tokens=n, min_new_tokens=n, **gk),
            ),
        ):
            ttft = timed(lambda: fn(1), repeat=5)
            full = timed(lambda: fn(a.new_tokens), repeat=3)
            gen[name] = dict(ttft_s=ttft, tokens_per_s=(a.new_tokens - 1) / max(full - ttft, 1e-9))
    for k, v in gen.items():
        print(f"  generate {k:<6} time to first token {v['ttft_s'] * 1e3:7.1f} ms   {v['tokens_per_s']:7.1f} tokens/s")
    ratios = dict(
        train_vs_llava15=base / res["lynx"],
        train_cached_vs_llava15=base / res["lynx + cache"],
        train_vs_llava_frozen=res["llava (LLM frozen)"] / res["lynx"],
        ttft=gen["llava"]["ttft_s"] / gen["lynx"]["ttft_s"],
        tokens_per_s=gen["lynx"]["tokens_per_s"] / gen["llava"]["tokens_per_s"],
    )
    for k, v in ratios.items():
        print(f"ratio {k:<26} {v:.2f}x (Lynx / LLaVA, higher is better for Lynx)")
    save(
        "vs_llava",
        dict(
            args=vars(a),
            visual_tokens=n_vis,
            seconds_per_step=res,
            generate=gen,
            ratios=ratios,
            lynx_trainable=trainable["lynx"],
        ),
    )


if __name__ == "__main__":
    main()
