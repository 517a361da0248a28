"""Cached frozen-encoder features vs recomputing them: one training epoch after the first, with `cache_features`
on and off (`FeatureCache`, `TrainConfig.cache_features`), on the same images, for a tower-heavy and the quickstart
model. Prints the feature time per epoch (tower forward vs cache lookup) and the whole epoch time, and their ratios.

    python bench/feature_cache.py [--images 128 --batch 16]"""

import argparse, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device, save, sync


def epoch(model, pixels, texts, batch, opt) -> tuple[float, float]:
    "(seconds for the whole epoch, seconds spent producing tower features)."
    spent = [0.0]
    inner = model.vision._features

    def timed_features(p):
        sync()
        t = time.perf_counter()
        out = inner(p)
        sync()
        spent[0] += time.perf_counter() - t
        return out

    model.vision._features = timed_features
    sync()
    t0 = time.perf_counter()
    for i in range(0, len(pixels), batch):
        loss = model(**{k: v[i : i + batch] for k, v in texts.items()}, pixel_values=pixels[i : i + batch]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    total = time.perf_counter() - t0
    del model.vision._features
    return total, spent[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    from lynx_lite.config import get_preset
    import lynx_lite.lab.quickstart  # noqa: F401  (registers the `quickstart` preset)
    from lynx_lite.freeze import freeze_for_stage
    from lynx_lite.model import LynxModel
    from lynx_lite.chat_format import encode_batch, tiny_tokenizer
    from lynx_lite.vision import FeatureCache

    tok, g = tiny_tokenizer(), torch.Generator().manual_seed(0)
    setups = {  # a tower-heavy model (ViT-B-like tower at 224 px, small LLM) and the quickstart's
        "vit-b tower, small llm": dict(
            image=224,
            over={
                "vision.image_size": 224,
                "vision.config": dict(
                    hidden_size=768,
                    intermediate_size=3072,
                    num_hidden_layers=12,
                    num_attention_heads=12,
                    image_size=224,
                    patch_size=16,
                ),
            },
        ),
        "quickstart": dict(image=64, preset="quickstart", over={}),
    }
    results = {}
    for name, s in setups.items():
        torch.manual_seed(0)
        model = LynxModel(get_preset(s.get("preset", "quickstart"), **s["over"])).to(device())
        freeze_for_stage(model, 1, verbose=False)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        pixels = torch.randn(a.images, 3, s["image"], s["image"], generator=g).to(device())
        texts = {
            k: v.to(device())
            for k, v in encode_batch(
                tok, ["describe the image."] * a.images, ["a small red circle at the top left."] * a.images
            ).items()
        }
        no_cache = epoch(model, pixels, texts, a.batch, opt)
        model.vision.cache = FeatureCache()
        epoch(model, pixels, texts, a.batch, opt)  # epoch 1 fills the cache
        cached = epoch(model, pixels, texts, a.batch, opt)
        model.vision.cache = None
        results[name] = dict(
            epoch_s=dict(recompute=no_cache[0], cached=cached[0]),
            features_s=dict(recompute=no_cache[1], cached=cached[1]),
            ratio_features=no_cache[1] / cached[1],
            ratio_epoch=no_cache[0] / cached[0],
        )
        r = results[name]
        print(f"{name} ({a.images} images, batch {a.batch}, {device()}):")
        print(
            f"  tower features per epoch: recompute {no_cache[1]:7.2f} s, "
            f"from cache {cached[1]:7.3f} s  -> {r['ratio_features']:.1f}x"
        )
        print(
            f"  whole epoch:              recompute {no_cache[0]:7.2f} s, "
            f"from cache {cached[0]:7.2f} s  -> {r['ratio_epoch']:.2f}x"
        )
    save("feature_cache", dict(images=a.images, batch=a.batch, setups=results))


if __name__ == "__main__":
    main()
