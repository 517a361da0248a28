"""4-bit nf4 (double quantisation, bitsandbytes) vs bf16 weight memory of the same LLM, loaded with from_pretrained.

Bytes are counted tensor by tensor, including the 4-bit layers' quantisation constants (absmax and the nested
double-quantisation state), which `get_memory_footprint()` leaves out. The embedding table stays bf16 in 4-bit
loading, so the whole-model ratio of a small model is dominated by it; the decoder layers' ratio is what a 7B model
approaches (its embeddings are 2% of its weights), and the script extrapolates to Llama-7B's shapes.

    python bench/quant_memory.py [--hidden 2048 --layers 8 --vocab 32000]"""

import argparse, sys, tempfile
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device, save


def nbytes(module: torch.nn.Module) -> int:
    "Bytes of parameters and buffers, plus the quantisation state of 4-bit weights."
    total = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    for p in module.parameters():
        qs = getattr(p, "quant_state", None)
        while qs is not None:
            total += qs.absmax.numel() * qs.absmax.element_size() + (
                qs.code.numel() * qs.code.element_size() if qs.code is not None else 0
            )
            qs = getattr(qs, "state2", None)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    a = ap.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    torch.manual_seed(0)
    d = Path(tempfile.mkdtemp())
    cfg = AutoConfig.for_model(
        "llama",
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=int(a.hidden * 8 / 3) // 256 * 256,
        num_hidden_layers=a.layers,
        num_attention_heads=a.hidden // 128,
        num_key_value_heads=a.hidden // 128,
    )
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(d / "llm")
    on = {"": device()}
    bf16 = AutoModelForCausalLM.from_pretrained(d / "llm", dtype=torch.bfloat16, device_map=on)
    q = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    nf4 = AutoModelForCausalLM.from_pretrained(d / "llm", quantization_config=q, device_map=on)
    assert "Linear4bit" in {type(m).__name__ for m in nf4.modules()}
    whole = nbytes(nf4) / nbytes(bf16)
    layer = nbytes(nf4.model.layers[0]) / nbytes(bf16.model.layers[0])
    emb = nbytes(bf16.model.embed_tokens)
    # Llama-7B: 32 layers of 202M parameters, 4096 x 32000 embedding (bf16 in both) and lm_head (4-bit like the layers)
    l7, e7 = 202_383_360, 4096 * 32000
    est7 = (32 * l7 * 2 * layer + e7 * 2 + e7 * 2 * layer) / ((32 * l7 + 2 * e7) * 2)
    params = sum(p.numel() for p in bf16.parameters())
    print(
        f"Llama of {params / 1e6:.0f}M parameters (hidden {a.hidden}, {a.layers} layers, vocab {a.vocab}) on {device()}"
    )
    print(
        f"  bf16 {nbytes(bf16) / 2**20:8.1f} MiB, nf4 {nbytes(nf4) / 2**20:8.1f} MiB "
        f"(embedding table {emb / 2**20:.1f} MiB, bf16 in both)"
    )
    print(f"nf4 / bf16, one decoder layer:           {layer:.3f}x")
    print(f"nf4 / bf16, whole model:                 {whole:.3f}x")
    print(f"nf4 / bf16, Llama-7B shapes (from these): {est7:.3f}x")
    save(
        "quant_memory",
        dict(
            params=params,
            hidden=a.hidden,
            layers=a.layers,
            vocab=a.vocab,
            bf16_bytes=nbytes(bf16),
            nf4_bytes=nbytes(nf4),
            ratio_layer=layer,
            ratio_whole=whole,
            ratio_7b_estimate=est7,
        ),
    )


if __name__ == "__main__":
    main()
