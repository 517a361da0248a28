"Data pipeline: bad input in strict and training modes, exact answer supervision, video backends, mixtures."

import json, logging, sys
import av, numpy as np, pytest, torch
from PIL import Image
from torch.utils.data import DataLoader
from lynx_lite.config import get_preset
from lynx_lite.dataset import Collator, LynxDataset
from lynx_lite.media import image_to_pixels, video_backend
from lynx_lite.mixture import mixture
from lynx_lite.records import (
    BadSample,
    SkipLog,
    load_conversations,
    load_mme,
    load_pairs,
    load_text_instructions,
)
from lynx_lite.lab.shapes import write_dataset

CFG = get_preset("tiny")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    write_dataset(d, n_images=16, n_videos=4, seed=11, progress=False)
    return d


@pytest.fixture(scope="module")
def bad_files(world):
    "One file per kind of bad (and of odd-but-valid) input, and the reason each should be skipped for (None = fine)."
    d = world / "odd"
    d.mkdir(exist_ok=True)
    ok = Image.open(world / "images/000000.png")
    rgba = ok.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(ok.size))  # from transparent (top) to opaque (bottom)
    rgba.save(d / "rgba.png")
    ok.convert("L").save(d / "gray.png")
    ok.convert("P").save(d / "palette.png")
    Image.fromarray((np.asarray(ok.convert("L"), dtype=np.uint16) * 257)).save(d / "sixteen.png")
    Image.new("1", (20000, 20000)).save(d / "bomb.png")
    (d / "junk.png").write_bytes(b"\x00garbage" * 50)
    (d / "cut.png").write_bytes((world / "images/000001.png").read_bytes()[:100])
    video = (world / "videos/000016.mp4").read_bytes()
    (d / "cut.mp4").write_bytes(video[: len(video) // 2])
    (d / "empty.mp4").write_bytes(b"")
    for name, codec in (("noframes.avi", "mpeg4"), ("nostream.mp4", "libx264")):  # a video stream of 0 frames; none
        with av.open(str(d / name), "w") as c:
            stream = c.add_stream(codec, rate=5)
            stream.width = stream.height = 32
            c.start_encoding()
    return {
        "rgba.png": None,
        "gray.png": None,
        "palette.png": None,
        "sixteen.png": None,
        "bomb.png": "image_too_large",
        "junk.png": "corrupt_image",
        "cut.png": "corrupt_image",
        "missing.png": "missing_file",
        "cut.mp4": "corrupt_video",
        "empty.mp4": "empty_file",
        "noframes.avi": "empty_video",
        "nostream.mp4": "empty_video",
    }


def annotation(world, bad_files):
    "A conversations JSONL with one line per file above, a malformed line and a far too long prompt."
    lines = []
    for name in bad_files:
        key = "video" if name.endswith((".mp4", ".avi")) else "image"
        lines.append(
            json.dumps(
                {
                    key: f"odd/{name}",
                    "conversations": [
                        {"from": "human", "value": f"<{key}>\nwhat colour?"},
                        {"from": "gpt", "value": "red"},
                    ],
                }
            )
        )
    lines.append('{"image": "odd/gray.png", "conversations": [{"from": "human", "val')
    lines.append(
        json.dumps({"conversations": [{"from": "human", "value": "red " * 400}, {"from": "gpt", "value": "ok"}]})
    )
    path = world / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_input_strict_names_file_and_line(world, bad_files, tok):
    path = annotation(world, bad_files)
    with pytest.raises(BadSample, match=r"odd\.jsonl:13: not valid JSON"):
        load_conversations(path)
    records = load_conversations(path, strict=False)
    ds = LynxDataset(records, tok, CFG, strict=True)
    for i, (name, reason) in enumerate(bad_files.items()):
        if reason is None:
            assert ds[i]["pixel_values"].shape == (3, 32, 32)
            continue
        with pytest.raises(BadSample) as e:
            ds[i]
        assert e.value.reason == reason and f"odd.jsonl:{i + 1}" in str(e.value) and name in str(e.value)
    with pytest.raises(BadSample, match=r"odd\.jsonl:14: .*max_prompt_tokens"):
        ds[len(records) - 1]


def test_bad_input_training_mode_skips_and_counts(world, bad_files, tok, caplog):
    path = annotation(world, bad_files)
    skips = SkipLog()
    with caplog.at_level(logging.WARNING, logger="lynx_lite.data"):
        records = load_conversations(path, strict=False, skips=skips)
        loader = DataLoader(LynxDataset(records, tok, CFG), batch_size=4, collate_fn=Collator(tok.pad_token_id))
        sizes = []
        for batch in loader:  # never raises
            skips.update(batch["skipped"])
            sizes.append(batch["size"])
    expected = {
        "malformed_json": 1,
        "too_long": 1,
        "image_too_large": 1,
        "corrupt_image": 2,
        "missing_file": 1,
        "corrupt_video": 1,
        "empty_file": 1,
        "empty_video": 2,
    }
    assert dict(skips.counts) == expected
    assert sum(sizes) == 4  # rgba, gray, palette, 16-bit
    assert len(caplog.records) == len(expected)  # one warning per reason, not per sample


def test_odd_images_give_the_right_pixels(world, bad_files, tok):
    "RGBA over white, grey and 16-bit grey as 3 equal channels: the values, not only the shapes."
    records = load_conversations(annotation(world, bad_files), strict=False)
    ds = LynxDataset(records, tok, CFG, strict=True)
    pixels = {name: ds[i]["pixel_values"] for i, name in enumerate(bad_files) if bad_files[name] is None}
    d, vision = world / "odd", CFG.vision
    rgb = np.asarray(Image.open(world / "images/000000.png").convert("RGB"), dtype=np.float64)
    alpha = np.asarray(Image.open(d / "rgba.png"), dtype=np.float64)[..., 3:] / 255
    over_white = Image.fromarray(np.round(rgb * alpha + 255 * (1 - alpha)).astype(np.uint8))
    level = 1.0 / 255 / min(vision.std)  # one 8-bit level, normalised
    torch.testing.assert_close(pixels["rgba.png"], image_to_pixels(over_white, vision), rtol=0, atol=1.01 * level)
    assert not torch.allclose(pixels["rgba.png"], image_to_pixels(Image.fromarray(rgb.astype(np.uint8)), vision))
    grey = image_to_pixels(Image.open(d / "gray.png").convert("RGB"), vision)
    assert torch.equal(pixels["gray.png"], grey) and torch.equal(pixels["sixteen.png"], grey)  # 16 bit: 257 x grey
    channels = grey * torch.tensor(vision.std)[:, None, None] + torch.tensor(vision.mean)[:, None, None]
    torch.testing.assert_close(channels[1:], channels[:1].expand(2, -1, -1))  # three equal channels


def test_supervised_tokens_are_exactly_the_answers(world, tok):
    records = load_conversations(world / "instructions.json")
    ds = LynxDataset(records, tok, CFG, strict=True)
    multi = 0
    for rec in records:
        item = ds.encode(rec)
        ids, labels = torch.tensor(item["input_ids"]), torch.tensor(item["labels"])
        spans = tok.decode(ids[labels != -100]).split(tok.eos_token)
        answers = [tok.decode(tok(a, add_special_tokens=False).input_ids) for _, a in rec.turns]
        assert [s.strip() for s in spans[:-1]] == answers and spans[-1] == ""
        multi += len(rec.turns) > 1
    assert multi == len(records)  # every shapes conversation has several turns


def test_other_formats_load(world, tok):
    pairs, texts = load_pairs(world / "captions.jsonl"), load_text_instructions(world / "text_instructions.jsonl")
    mme = load_mme(world / "mme")
    assert len(pairs) == 20 and len(texts) == 20 and len(mme) == 16 * 8  # one text-only instruction per image or video
    assert {r.meta["answer"] for r in mme} == {"Yes", "No"}
    assert all(len(r.turns) == 1 for r in pairs + texts)


def test_decord_and_pyav_agree_and_fallback(world, tok, monkeypatch):
    rec = load_pairs(world / "captions.jsonl")[-1]
    assert rec.modality == "video"
    a = LynxDataset([rec], tok, CFG, video_backend="decord")[0]["pixel_values"]
    b = LynxDataset([rec], tok, CFG, video_backend="pyav")[0]["pixel_values"]
    assert a.shape == (CFG.video.num_frames, 3, 32, 32) and torch.equal(a, b)
    monkeypatch.setitem(sys.modules, "decord", None)  # as if decord were not installed
    assert video_backend() == "pyav"
    assert torch.equal(LynxDataset([rec], tok, CFG)[0]["pixel_values"], a)


def test_collator_padding_sides(tok):
    items = [
        dict(input_ids=[5, 6, 7], labels=[-100, 6, 7], pixel_values=None, modality="text"),
        dict(input_ids=[5], labels=[-100], pixel_values=None, modality="text"),
    ]
    left, right = Collator(tok.pad_token_id, "left")(items), Collator(tok.pad_token_id, "right")(items)
    assert left["input_ids"][1].tolist() == [tok.pad_token_id] * 2 + [5] and left["attention_mask"][1].tolist() == [
        0,
        0,
        1,
    ]
    assert right["input_ids"][1].tolist() == [5] + [tok.pad_token_id] * 2 and right["labels"][1].tolist() == [-100] * 3
    assert left["pixel_values"] is None
    empty = Collator(tok.pad_token_id)([dict(skipped="missing_file", error="x")])
    assert empty["size"] == 0 and empty["skipped"] == {"missing_file": 1}


def test_mixture_resumes_through_a_dataloader(world, tok):
    sources = {
        "pairs": LynxDataset(load_pairs(world / "captions.jsonl"), tok, CFG),
        "text": LynxDataset(load_text_instructions(world / "text_instructions.jsonl"), tok, CFG),
    }

    def run(state=None, steps=None):
        ds, sampler = mixture(sources, {"pairs": 0.75, "text": 0.25}, num_samples=24, seed=4)
        if state:
            sampler.load_state_dict(state)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, collate_fn=Collator(tok.pad_token_id), num_workers=2)
        out = []
        for i, batch in enumerate(loader):
            if steps is not None and i == steps:
                break
            out.append(batch["input_ids"])
        return out, sampler

    full, _ = run()
    first, sampler = run(steps=2)  # workers have prefetched past batch 2: resume from what was consumed
    rest, _ = run(state=sampler.state_at(2 * 4))
    assert len(full) == 6 and len(first) + len(rest) == 6
    assert all(torch.equal(a, b) for a, b in zip(full, first + rest))
    kinds = [
        k
        for b in DataLoader(
            mixture(sources, {"pairs": 0.75, "text": 0.25}, num_samples=24, seed=4)[0],
            batch_size=24,
            sampler=mixture(sources, {"pairs": 0.75, "text": 0.25}, num_samples=24, seed=4)[1],
            collate_fn=Collator(tok.pad_token_id),
        )
        for k in b["modalities"]
    ]
    assert kinds.count("text") == 6  # a quarter, exactly
