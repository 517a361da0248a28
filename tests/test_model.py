"LynxModel behaviour on tiny random models: shapes, identity at init, labels, generation, training, round trips."

import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.adapters import NEW_LLM_MODULES
from lynx_lite.model import LynxModel, answer, configure_tokens
from lynx_lite.chat_format import encode_batch

FUSIONS = ["tiny", "tiny-xattn", "tiny-lora"]
PROMPTS = ["user: what colour is the big circle?\nbot:", "user: how many?\nbot:"]  # the `batch` fixture's, formatted
# other LLM families under the same model (hidden 64 so the tiny resampler and gates fit)
FAMILIES = {
    "qwen2": dict(
        model_type="qwen2",
        config=dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            initializer_range=0.1,
        ),
    ),
    "gpt2": dict(
        model_type="gpt2",
        config=dict(vocab_size=512, n_embd=64, n_layer=4, n_head=4, n_positions=256, initializer_range=0.1),
    ),
}


def build(preset="tiny", seed=0, llm="llama", **overrides):
    "A tiny model from `preset`, with its LLM swapped for another family when `llm` is not llama."
    if llm != "llama":
        overrides = {"llm.model_type": FAMILIES[llm]["model_type"], "llm.config": FAMILIES[llm]["config"], **overrides}
    torch.manual_seed(seed)
    return LynxModel(get_preset(preset, **overrides))


def wake(m, seed=0):
    """The new LLM modules at random: xattn gates open, adapter Up and LoRA B non-zero (they start as the identity, so
    that without this they change nothing and a test of them proves nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.llm.named_parameters():
            if any(k in n for k in NEW_LLM_MODULES) and not p.any():
                p.copy_(torch.full_like(p, 1.0) if n.endswith("_gate") else torch.randn(p.shape, generator=g) * 0.2)
    return m


@pytest.mark.parametrize("preset", FUSIONS)
def test_wake_opens_the_new_modules(preset, batch, images):
    "After `wake`, the new modules change the logits, and for xattn the image does."
    m = build(preset).eval()
    with torch.no_grad():
        before = m(**batch, pixel_values=images).logits
        wake(m)
        after = m(**batch, pixel_values=images).logits
        assert (after - before).abs().max() > 0.1
        if m.config.fusion.mode == "xattn":
            assert (after - m(**batch, pixel_values=images.flip(0)).logits).abs().max() > 0.1


@pytest.mark.parametrize("preset", FUSIONS)
def test_shapes(preset, batch, images):
    m = build(preset).eval()
    L, Q = batch["input_ids"].shape[1], m.config.resampler.num_queries
    prefix = Q if m.config.fusion.mode == "prefix" else 0
    assert m(**batch, pixel_values=images).logits.shape == (2, prefix + L, 512)
    videos = torch.randn(2, m.config.video.num_frames, 3, 32, 32)
    assert m(**batch, pixel_values=videos).logits.shape == (2, prefix + L, 512)
    assert m.encode_visual(videos, 2)[0].shape == (2, Q, 64)


@pytest.mark.parametrize("preset", FUSIONS)
@pytest.mark.parametrize("llm", ["llama", "qwen2", "gpt2"])
def test_new_modules_start_as_identity(preset, llm, batch, images):
    "Adapters (zero Up), LoRA (zero B) and xattn gates (tanh 0) leave the frozen LLM's logits unchanged at step 0."
    m = build(preset, llm=llm).eval()
    plain = build("tiny", llm=llm, **{"adapters.method": "none"}).eval()
    plain.load_state_dict(m.state_dict(), strict=False)  # same tower, resampler and LLM weights, no new modules
    if m.config.fusion.mode == "xattn":  # gates at 0: the image cannot change anything, the text-only LLM is intact
        ref = plain(**batch).logits
    else:
        ref = plain(**batch, pixel_values=images).logits
    with torch.no_grad():
        assert torch.equal(m(**batch, pixel_values=images).logits, ref)


def test_lynx_init_is_not_identity(batch, images):
    m, ref = build(**{"adapters.init": "lynx"}).eval(), build(**{"adapters.method": "none"}).eval()
    ref.load_state_dict(m.state_dict(), strict=False)
    with torch.no_grad():
        assert not torch.allclose(m(**batch, pixel_values=images).logits, ref(**batch, pixel_values=images).logits)


def test_label_mask(tok, batch, images):
    m = build()
    f = m.fuse(batch["input_ids"], batch["attention_mask"], images, batch["labels"])
    Q, labels = m.config.resampler.num_queries, f["labels"]
    assert (labels[:, :Q] == -100).all()
    for row, ids, answer_text in zip(labels, batch["input_ids"], ["red", "three small squares"]):
        supervised = row[row != -100]
        assert tok.decode(supervised, skip_special_tokens=True) == answer_text
        assert supervised[-1] == tok.eos_token_id
        n = len(supervised)  # the supervised ids are the last tokens of the row, unchanged
        assert torch.equal(supervised, ids[-n:])
    # what is masked is exactly the prompt (BOS .. "bot:"): the tokens before the answer decode to it
    for ids, row, mask, prompt in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], PROMPTS):
        start, end = int(mask.argmax()), int((row != -100).int().argmax())
        assert (row[:end] == -100).all() and (row[end:] != -100).all()
        assert ids[start:end].tolist() == [tok.bos_token_id] + tok(prompt, add_special_tokens=False).input_ids


def scored(m, tok, questions, pixels, **kw):
    "(new tokens (B,T), scores (B,T,V)): greedy generation with the logits of every step, not only their argmax."
    enc = encode_batch(tok, questions)
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id, **kw)
    out = m.generate(**enc, pixel_values=pixels, output_scores=True, return_dict_in_generate=True, **kw)
    return out.sequences, torch.stack(out.scores, 1)


@pytest.mark.parametrize("preset", FUSIONS)
def test_batched_generate_equals_one_by_one(preset, tok):
    """Open gates, non-zero adapters / LoRA: a text-only row next to images and a video gets, step by step, the
    logits it gets alone (the tiny LLM's greedy text alone hardly depends on its input); beams give the same answers."""
    m = wake(build(preset)).eval()
    configure_tokens(m, tok)
    qs = ["what colour is the small star in the upper left corner?", "how many?", "describe the image", "is it red?"]
    g = torch.Generator().manual_seed(2)
    pix = [torch.randn(3, 32, 32, generator=g), torch.randn(m.config.video.num_frames, 3, 32, 32, generator=g), None]
    pix.append(torch.randn(3, 32, 32, generator=g))
    ids, scores = scored(m, tok, qs, pix)
    for i, (q, p) in enumerate(zip(qs, pix)):
        one_ids, one_scores = scored(m, tok, [q], [p])
        assert torch.equal(ids[i : i + 1], one_ids)
        torch.testing.assert_close(scores[i : i + 1], one_scores, rtol=1e-4, atol=1e-4)
    assert (scores[2] - scores[3]).nan_to_num().abs().max() > 0.1  # rows differ: a mix-up would show (-inf: EOS)
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, num_beams=2)
    assert answer(m, tok, qs, pix, **kw) == [answer(m, tok, [q], [p], **kw)[0] for q, p in zip(qs, pix)]


@pytest.mark.parametrize("preset", FUSIONS)
def test_cached_generation_equals_full_forward_passes(preset, tok, images):
    """Generation reuses the LLM's key/value cache (from `inputs_embeds` transformers always does; `use_cache=False` is
    ignored): each greedy step has the logits of a full forward pass over the prompt and the tokens so far."""
    m = wake(build(preset)).eval()
    configure_tokens(m, tok)
    qs = ["what colour is it?", "how many shapes are there in the image?"]
    ids, scores = scored(m, tok, qs, images)
    enc = encode_batch(tok, qs)
    x, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        for t in range(ids.shape[1]):
            logits = m(input_ids=x, attention_mask=mask, pixel_values=images).logits[:, -1].float()
            logits[:, tok.eos_token_id] = -float("inf")  # min_new_tokens
            torch.testing.assert_close(scores[:, t], logits, rtol=1e-4, atol=1e-4)
            assert torch.equal(ids[:, t], logits.argmax(-1))
            x, mask = torch.cat([x, ids[:, t : t + 1]], 1), torch.cat([mask, torch.ones_like(mask[:, :1])], 1)


@pytest.mark.parametrize("preset", FUSIONS)
def test_text_only_generation(preset, tok):
    "Without media the model generates what its LLM (new modules included) does from the prompt, alone or in a batch."
    m = wake(build(preset)).eval()
    configure_tokens(m, tok)
    enc = encode_batch(tok, ["tell me about circles"])
    kw = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = m.llm.generate(**enc, **kw)[:, enc["input_ids"].shape[1] :]
    for pixels in (None, [None]):
        assert torch.equal(m.generate(**enc, pixel_values=pixels, **kw), expected)
    two = encode_batch(tok, ["tell me about circles"] * 2)
    assert torch.equal(m.generate(**two, pixel_values=[None, torch.randn(3, 32, 32)], **kw)[:1], expected)


@pytest.mark.parametrize(
    "pixels, msg",
    [
        (lambda: torch.randn(3, 3, 32, 32), "got 3 images/videos for 2 prompts"),
        (lambda: [torch.randn(3, 32, 32)], "got 1 images/videos for 2 prompts"),
        (lambda: torch.randn(2, 9, 3, 32, 32), "num_frames"),
        (lambda: torch.randn(2, 32, 32), "expected images (B,3,H,W) or videos"),
    ],
)
def test_bad_media_errors(batch, pixels, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        build()(**batch, pixel_values=pixels())


@pytest.mark.parametrize("preset", FUSIONS)
def test_loss_falls_on_a_fixed_batch(preset, batch, images):
    m = build(preset).train()
    trainable = [p for p in m.parameters() if p.requires_grad]
    before = {id(p): p.detach().clone() for p in m.llm.parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    losses = []
    for _ in range(20):
        loss = m(**batch, pixel_values=images).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(torch.equal(p, before[id(p)]) for p in m.llm.parameters() if not p.requires_grad)  # frozen stays frozen


@pytest.mark.parametrize("preset", FUSIONS)
def test_save_load_roundtrip(preset, tmp_path, batch, images, tok):
    m = build(preset, seed=3)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    m(**batch, pixel_values=images).loss.backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        ref = m(**batch, pixel_values=images).logits
    m.save_pretrained(tmp_path, tokenizer=tok)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in tmp_path.iterdir())
    with torch.no_grad():
        assert torch.equal(LynxModel.from_pretrained(tmp_path).eval()(**batch, pixel_values=images).logits, ref)


def test_gpt2_roundtrip_with_tied_embeddings(tmp_path, batch, images):
    m = build(llm="gpt2").eval()
    assert m.llm.lm_head.weight.data_ptr() == m.llm.get_input_embeddings().weight.data_ptr()
    with torch.no_grad():
        ref = m(**batch, pixel_values=images).logits
    m.save_pretrained(tmp_path)
    m2 = LynxModel.from_pretrained(tmp_path).eval()
    assert m2.llm.lm_head.weight.data_ptr() == m2.llm.get_input_embeddings().weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(m2(**batch, pixel_values=images).logits, ref)


def test_loading_never_unpickles(tmp_path, monkeypatch, batch, images):
    "Checkpoints are safetensors + JSON: loading works with torch.load and pickle disabled."
    import pickle

    m = build(seed=5).eval()
    m.save_pretrained(tmp_path)

    def refuse(*a, **k):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    with torch.no_grad():
        assert torch.equal(
            LynxModel.from_pretrained(tmp_path).eval()(**batch, pixel_values=images).logits,
            m(**batch, pixel_values=images).logits,
        )


def test_train_mode_reaches_only_new_modules():
    m = build("tiny-lora", **{"llm.config": {**get_preset("tiny").llm.config, "attention_dropout": 0.1}}).train()
    assert not m.vision.model.training and not m.llm.training
    dropouts = {n: mod.training for n, mod in m.llm.named_modules() if "lora_dropout" in n}
    assert dropouts and all(dropouts.values())  # LoRA dropout is active while training ...
    m.eval()
    assert not any(mod.training for mod in m.modules())  # ... and off in eval


def test_trainable_only_save_stores_unreferenced_bases(tmp_path, batch, images):
    "A base with no name_or_path cannot be referenced, so a trainable-only save stores it (tied GPT-2 head included)."
    m = build(llm="gpt2", seed=2).eval()
    m.vision.model.save_pretrained(tmp_path / "tower")
    m.config.vision.name_or_path = str(tmp_path / "tower")
    m.save_pretrained(tmp_path / "lynx", trainable_only=True)
    from safetensors import safe_open

    with safe_open(tmp_path / "lynx" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert not any(k.startswith("vision.model.") for k in keys) and any(k.startswith("llm.") for k in keys)
    m2 = LynxModel.from_pretrained(tmp_path / "lynx").eval()
    with torch.no_grad():
        assert torch.equal(m2(**batch, pixel_values=images).logits, m(**batch, pixel_values=images).logits)
