"""The original release's files: converted (tiny files made here in the three original formats), loaded, served; and
every key of the full-size original model mapped onto `lynx-7b` on the meta device."""

import argparse, csv, json, os, subprocess, sys
from pathlib import Path
import pytest, torch
import torch.nn.functional as F
from lynx_lite.config import get_preset
from lynx_lite.model import LynxModel, configure_tokens
from lynx_lite.original import (
    convert_original,
    from_original,
    meta_state_dict,
    original_state_dict,
    read_torch_file,
    resize_pos_embed,
    to_original,
    write_fake_release,
)
from lynx_lite.serialization import INDEX_NAME, load_tokenizer
from lynx_lite.chat_format import encode_batch

MAIN = "import sys; from lynx_lite.cli import main; sys.exit(main())"
KEYS = Path(__file__).parent / "data" / "lynx-original-keys.tsv"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    "The fake release's files and the model whose weights they hold."
    return write_fake_release(tmp_path_factory.mktemp("release"), seed=1)


def logits(model, tok, seed=0):
    "Logits of an image batch and a video batch (fp32, fixed inputs)."
    g = torch.Generator().manual_seed(seed)
    size, frames = model.config.vision.image_size, model.config.video.num_frames
    batch = encode_batch(tok, ["what colour is the circle?", "what moves?"], text_cfg=model.config.text)
    with torch.no_grad():
        return [
            model(**batch, pixel_values=torch.randn(2, *shape, generator=g)).logits
            for shape in ((3, size, size), (frames, 3, size, size))
        ]


def converted_equals_reference(out, reference):
    model, tok = LynxModel.from_pretrained(out).eval(), load_tokenizer(out)
    configure_tokens(model, tok)
    for got, want in zip(logits(model, tok), logits(reference, tok)):
        assert (got - want).abs().max() <= 1e-5
    return model, tok


def test_convert_then_load_gives_the_reference_logits(release, tmp_path):
    files, reference = release
    out = convert_original(files["lynx"], files["llm"], tmp_path / "out", files["eva"], "lynx-tiny", "float32")
    model, tok = converted_equals_reference(out, reference)
    assert (tok.pad_token, tok.pad_token_id) == ("[PAD]", 512)
    emb = model.llm.get_input_embeddings().weight
    assert torch.allclose(emb[512], emb[:512].mean(0), atol=1e-6)  # [PAD]: the mean of the released rows
    meta = json.loads((out / "config.json").read_text())
    assert meta["trainable_only"] and meta["config"]["llm"]["name_or_path"] == str(files["llm"])
    assert not list(tmp_path.glob(".out.*"))  # the temporary folder was renamed


def test_the_raw_files_hold_the_original_layouts(release):
    "Checked by hand against lynx.md, not through the converter's own tables."
    files, reference = release
    eva, tower = read_torch_file(files["eva"]), reference.vision.model
    d = tower.config.hidden_size
    assert torch.equal(eva["patch_embed.proj.weight"], tower.patch_embed.weight)
    assert torch.equal(eva["blocks.0.mlp.fc1.weight"], tower.blocks[0].mlp[0].weight)
    assert torch.equal(eva["blocks.0.attn.q_bias"], tower.blocks[0].attn.q_bias)
    assert eva["blocks.0.attn.qkv.weight"].shape == (3 * d, d) and "blocks.2.attn.qkv.weight" in eva  # 1 extra block
    assert eva["pos_embed"].shape == (1, 1 + 2 * 2, d)  # a smaller grid than the model's 4x4
    sd = read_torch_file(files["lynx"])
    assert list(sd) == ["model"]
    assert torch.equal(sd["model"]["model.bridge.layers.0.1.3.weight"], reference.resampler.layers[0][1][3].weight)
    assert "model.LLM.model.layers.2.output_adapter.scaling" in sd["model"]
    assert "model.absolute_frame_pos_embed" in sd["model"]


def test_a_release_file_with_the_tower_needs_no_eva_file(release, tmp_path):
    "A flat state dict (no `model` entry) carrying vision_encoder.* in the original's split q/k/v: no --eva needed."
    files, reference = release
    trained = original_state_dict(read_torch_file(files["lynx"]))
    tower = to_original({k: v for k, v in reference.state_dict().items() if k.startswith("vision.model.")})
    assert "vision_encoder.blocks.0.attn.k_proj.weight" in tower and "vision_encoder.blocks.0.attn.q_proj.bias" in tower
    torch.save({**trained, **tower}, tmp_path / "pretrain_lynx.pt")
    out = convert_original(tmp_path / "pretrain_lynx.pt", files["llm"], tmp_path / "out", None, "lynx-tiny", "float32")
    converted_equals_reference(out, reference)


def test_sharded_output_loads_the_same(release, tmp_path):
    files, reference = release
    out = convert_original(
        files["lynx"], files["llm"], tmp_path / "out", files["eva"], "lynx-tiny", "float32", max_shard_size="40KB"
    )
    assert (out / INDEX_NAME).exists() and len(list(out.glob("model-*-of-*.safetensors"))) > 2
    converted_equals_reference(out, reference)


def test_position_embedding_resize_is_a_direct_bicubic_interpolation():
    pos = torch.randn(1, 1 + 16 * 16, 24)
    grid = pos[0, 1:].T.reshape(1, 24, 16, 16)
    want = F.interpolate(grid, size=(30, 30), mode="bicubic", align_corners=False).reshape(24, 900).T
    got = resize_pos_embed(pos, 30)
    assert got.shape == (1, 901, 24) and torch.equal(got[0, 0], pos[0, 0])
    assert (got[0, 1:] - want).abs().max() <= 1e-6


def test_every_original_key_maps_onto_lynx_7b_at_full_size():
    rows = list(csv.reader(KEYS.open(), delimiter="\t"))[1:]
    original = {k: torch.empty([int(x) for x in s.split("x")], device="meta") for k, s in rows}
    assert len(original) == 1061
    ours = meta_state_dict(get_preset("lynx-7b"))
    mapped, _ = from_original(original)
    for k, t in mapped.items():
        assert k in ours, k
        assert t.shape == ours[k].shape, (k, t.shape, ours[k].shape)
    # every lynx-7b weight has a source; the release does not carry the 32 rotary inv_freq buffers (computed at
    # build time, not learned), and the original splits each fused qkv weight in three (fused back here)
    assert set(ours) == set(mapped)
    dropped = [k for k in original if not k.startswith("vision_encoder.") and from_original({k: original[k]})[0] == {}]
    assert len(dropped) == 32 and all(k.endswith("self_attn.rotary_emb.inv_freq") for k in dropped)
    assert (
        sum(k.endswith((".q_proj.weight", ".k_proj.weight", ".v_proj.weight")) for k in original if "vision" in k)
        == 3 * 39
    )


def bad_inputs(release, tmp_path):
    files, _ = release
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    cut = tmp_path / "finetune_lynx.pt"
    cut.write_bytes(files["lynx"].read_bytes()[: files["lynx"].stat().st_size // 2])
    torch.save({"model": {"head.weight": torch.ones(2, 2)}}, tmp_path / "other.pt")
    sd = read_torch_file(files["lynx"])
    torch.save({**sd, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "pickled.pt")
    sd["model"]["model.bridge.latents"] = torch.randn(8, 96)  # as a bigger Lynx's resampler (LLM width 96, not 64)
    torch.save(sd, tmp_path / "lynx-13b.pt")
    return {
        "not a torch file": (dict(lynx=tmp_path / "notes.txt"), "is not a torch checkpoint"),
        "truncated": (dict(lynx=cut), "truncated or corrupt"),
        "another model": (dict(lynx=tmp_path / "other.pt"), "has no bridge.* weights"),
        "shape mismatch": (dict(lynx=tmp_path / "lynx-13b.pt"), "has shape (8, 96) but preset lynx-tiny needs (8, 64)"),
        "weights_only refuses": (dict(lynx=tmp_path / "pickled.pt"), "holds Python objects besides tensors"),
        "no tower": (dict(eva=None), "carries no tower weights (vision_encoder.*): add --eva"),
        "missing file": (dict(eva=tmp_path / "eva_vit_g.pth"), "no such file"),
        "an LLM of other sizes": (dict(preset="lynx-7b"), "has hidden_size=64 but preset lynx-7b needs 4096"),
    }


def test_bad_inputs_say_what_to_do_and_leave_nothing(release, tmp_path):
    files, _ = release
    for case, (kw, message) in bad_inputs(release, tmp_path).items():
        args = dict(lynx=files["lynx"], llm=files["llm"], out=tmp_path / "out", eva=files["eva"], preset="lynx-tiny")
        with pytest.raises((ValueError, FileNotFoundError)) as e:
            convert_original(**{**args, **kw})
        assert message in str(e.value), (case, str(e.value))
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*")), case


def test_a_refused_file_is_never_unpickled(tmp_path):
    "A pickle that would run code when loaded the unsafe way: refused, and the code never ran."
    flag = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    torch.save({"model": {"bridge.latents": torch.ones(1)}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="holds Python objects besides tensors"):
        read_torch_file(tmp_path / "evil.pt")
    assert not flag.exists()


def cli(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def test_command_line_converts_and_chats(release, tmp_path):
    files, reference = release
    help_ = cli("convert-original", "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "--eva" in help_.stdout and "weights_only" in help_.stdout
    r = cli(
        "convert-original", "--lynx", str(files["lynx"]), "--eva", str(files["eva"]), "--llm", str(files["llm"]),
        "--preset", "lynx-tiny", "--dtype", "float32", "out", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    image = tmp_path / "cat.png"
    from PIL import Image

    Image.new("RGB", (80, 60), (200, 40, 40)).save(image)
    greedy = cli("chat", "--model", "out", "--image", str(image), "what colour is it?", cwd=tmp_path)
    assert greedy.returncode == 0 and greedy.stdout.strip(), greedy.stderr[-2000:]
    # the same answer as the reference model greedy-decoding the same image
    from lynx_lite.demo import chat_once

    tok = load_tokenizer(tmp_path / "out")
    configure_tokens(reference, tok)
    assert greedy.stdout.strip() == chat_once(reference, tok, "what colour is it?", image)
    original = cli(
        "chat", "--model", "out", "--image", str(image), "--decoding", "original", "what is it?", cwd=tmp_path
    )
    again = cli(
        "chat", "--model", "out", "--image", str(image), "--decoding", "original", "what is it?", cwd=tmp_path
    )
    assert original.returncode == 0 and original.stdout.strip() and original.stdout == again.stdout  # seed 42
    four = cli(
        "chat", "--model", "out", "--image", str(image), "--load-in-4bit", "what colour is it?", cwd=tmp_path
    )
    assert four.returncode == 0 and four.stdout.strip(), four.stderr[-2000:]
    exists = cli(
        "convert-original", "--lynx", str(files["lynx"]), "--llm", str(files["llm"]), "--preset", "lynx-tiny", "out",
        cwd=tmp_path,
    )  # fmt: skip
    lines = [x for x in exists.stderr.splitlines() if x.strip()]
    assert exists.returncode == 2 and len(lines) == 1 and "out exists: pass a new folder" in lines[0]


def test_load_in_4bit_without_bitsandbytes_is_one_line(release, tmp_path, monkeypatch, capsys):
    "A GPU-only option where bitsandbytes cannot load: one line naming the option and the fix, exit status 2."
    from lynx_lite.cli import main

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # its import fails, as on a machine without a backend
    code = main(["chat", "--model", str(tmp_path), "--load-in-4bit", "hi"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "4-bit loading (--load-in-4bit) needs bitsandbytes" in lines[0] and "--dtype bfloat16" in lines[0]


def test_training_from_the_released_llm_pads_with_its_new_token(release):
    "A recipe on a pretrained LLM whose preset adds [PAD]: the tokenizer gets the token whose row the LLM got."
    from lynx_lite.train import TrainConfig, build_model

    files, _ = release
    model, tok = build_model(TrainConfig(model="lynx-tiny", model_overrides={"llm.name_or_path": str(files["llm"])}))
    emb = model.llm.get_input_embeddings().weight
    assert (tok.pad_token, tok.pad_token_id, len(tok), emb.shape[0]) == ("[PAD]", 512, 513, 513)
    assert model.llm.config.pad_token_id == 512 and torch.allclose(emb[512], emb[:512].mean(0), atol=1e-6)
