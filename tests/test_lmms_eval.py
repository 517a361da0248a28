"The lmms-eval adapter without lmms-eval: fake requests with lmms-eval's `args`, a tiny model, hand-computed scores."

import importlib.util, json
from pathlib import Path
from types import SimpleNamespace
import pytest, torch
from PIL import Image
from lynx_lite import lmms_eval_plugin as plugin
from lynx_lite.lab.shapes import write_dataset
from lynx_lite.lmms_eval_plugin import (
    LynxLite,
    StopOnStrings,
    cut_at_stop,
    generation_settings,
    strip_visual_tags,
    visual_pixels,
    write_lmms_task,
)
from lynx_lite.model import LynxModel, configure_tokens
from lynx_lite.chat_format import encode_conversation, tiny_tokenizer

T, S = "shapes", "test"  # task and split names in the fake task_dict


def Req(*args):
    "What the adapter reads of lmms-eval's `Instance`: its `args`."
    return SimpleNamespace(args=args)


def to_visual(doc):
    return doc["visual"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    write_dataset(d, n_images=4, n_videos=1, seed=0, progress=False)
    return d


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tok, model = tiny_tokenizer(), LynxModel.from_preset("tiny").eval()
    configure_tokens(model, tok)
    return model, tok


@pytest.fixture(scope="module")
def docs(world):
    return [
        {"visual": [Image.open(world / "images/000000.png")], "q": "<image>\nWhat colour is the circle?", "a": " red"},
        {"visual": [str(world / "videos/000004.mp4")], "q": "What moves? <video>", "a": " the square"},
        {"visual": [], "q": "Is red a colour?", "a": " yes"},
        {"visual": [Image.open(world / "images/000001.png")], "q": "How many shapes are there?", "a": " two"},
        {"visual": [Image.open(world / f"images/00000{i}.png") for i in (0, 1, 2)], "q": "What changes?", "a": " it"},
    ]


def adapter(tiny, docs, **kw):
    model, tok = tiny
    lm = LynxLite(model=model, tokenizer=tok, **kw)
    lm.task_dict = {T: {S: docs}}
    return lm


def test_imports_without_lmms_eval():
    if importlib.util.find_spec("lmms_eval") is None:
        assert plugin.HAS_LMMS_EVAL is False
        with pytest.raises(ImportError):
            plugin.manifest()  # registration needs lmms-eval; the adapter does not
    assert issubclass(LynxLite, plugin.LMMBase) and LynxLite.is_simple
    assert plugin.CLASS_PATH == f"{LynxLite.__module__}.{LynxLite.__name__}"


def test_strip_visual_tags():
    assert strip_visual_tags("<image>\nWhat colour is the circle?") == "What colour is the circle?"
    assert strip_visual_tags("<image><image>\n<video>\nQ?\nAnswer:") == "Q?\nAnswer:"
    assert strip_visual_tags("Look at <image> now.") == "Look at now."
    assert strip_visual_tags("a\n\nb  c") == "a\n\nb  c"


def test_generation_settings():
    assert generation_settings({"until": "\n", "max_new_tokens": 5, "temperature": 0, "top_p": 0.9}, 40) == (
        ["\n"],
        {"max_new_tokens": 5, "num_beams": 1, "do_sample": False},
    )
    until, kw = generation_settings({"until": ["x", ""], "max_gen_toks": 7, "temperature": 0.5, "foo": 1}, 40)
    assert until == ["x"] and kw == {"max_new_tokens": 7, "num_beams": 1, "do_sample": True, "temperature": 0.5}
    assert generation_settings(None, 40) == ([], {"max_new_tokens": 40, "num_beams": 1, "do_sample": False})
    assert generation_settings({"do_sample": True}, 40)[1] == {
        "max_new_tokens": 40,
        "num_beams": 1,
        "do_sample": True,
        "temperature": 1.0,
    }
    with pytest.raises(TypeError):
        generation_settings({"until": 3}, 40)


def test_stop_strings():
    assert cut_at_stop("one two. three", [".", "three"]) == "one two"
    assert cut_at_stop("one", ["x"]) == "one"
    tok = tiny_tokenizer()
    ids = torch.tensor([tok("red circle").input_ids, tok("red square").input_ids])
    assert StopOnStrings(tok, ["circle"])(ids, None).tolist() == [True, False]


def test_visual_pixels(tiny, docs):
    model, _ = tiny
    S_ = model.config.vision.image_size
    assert visual_pixels([], model) is None and visual_pixels(None, model) is None
    assert visual_pixels(docs[0]["visual"], model).shape == (3, S_, S_)
    n = model.config.video.num_frames
    assert visual_pixels(docs[1]["visual"], model).shape == (n, 3, S_, S_)
    frames = visual_pixels(docs[4]["visual"], model)  # several images: the frames of one video
    assert frames.shape == (n, 3, S_, S_)
    with pytest.raises(TypeError):
        visual_pixels([{"array": [0.0]}], model)  # audio
    with pytest.raises(ValueError):
        visual_pixels(docs[1]["visual"] * 2, model)


def test_loglikelihood_is_the_hand_computed_sum_with_the_prefix_offset(tiny, docs):
    model, tok = tiny
    lm = adapter(tiny, docs, score="logprob")
    Q = model.config.resampler.num_queries
    for i, q, a in [(0, "What colour is the circle?", "red"), (2, "Is red a colour?", "yes")]:
        ids, labels = encode_conversation(tok, [(q, a)], model.config.text)
        ids, answer = ids[:-1], [t for t, lab in enumerate(labels) if lab != -100][:-1]  # " red", without EOS
        px = visual_pixels(docs[i]["visual"], model)
        with torch.no_grad():
            logits = model(torch.tensor([ids]), pixel_values=None if px is None else px[None]).logits[0]
        q_len = 0 if px is None else Q
        assert logits.shape[0] == q_len + len(ids)
        logp = logits.float().log_softmax(-1)
        by_hand = sum(logp[q_len + t - 1, ids[t]].item() for t in answer)
        greedy = all(logp[q_len + t - 1].argmax().item() == ids[t] for t in answer)
        ((score, is_greedy),) = lm.loglikelihood([Req(docs[i]["q"], docs[i]["a"], to_visual, i, T, S)])
        assert score == pytest.approx(by_hand, abs=1e-4) and is_greedy == greedy
        if px is not None:  # the offset matters: read without it, the score differs
            assert abs(sum(logp[t - 1, ids[t]].item() for t in answer) - by_hand) > 1e-3
    # score=nll (the default) is the negation; a callable doc_to_target is applied to the doc
    nll = adapter(tiny, docs).loglikelihood([Req(docs[0]["q"], lambda d: d["a"], to_visual, 0, T, S)])[0][0]
    assert nll == pytest.approx(-lm.loglikelihood([Req(docs[0]["q"], " red", to_visual, 0, T, S)])[0][0], abs=1e-5)


def test_is_greedy_true_for_the_argmax_token(tiny, docs):
    model, tok = tiny
    lm = adapter(tiny, docs)
    ctx = lm.prompt_ids(docs[0]["q"])
    px = visual_pixels(docs[0]["visual"], model)
    with torch.no_grad():
        logits = model(torch.tensor([ctx]), pixel_values=px[None]).logits[0, -1]
    special = set(tok.all_special_ids)
    best = next(t for t in logits.argsort(descending=True).tolist() if t < len(tok) and t not in special)
    word = tok.convert_ids_to_tokens(best)
    assert lm.continuation_ids(" " + word) == [best]
    ((_, greedy),) = lm.loglikelihood([Req(docs[0]["q"], " " + word, to_visual, 0, T, S)])
    assert greedy == (logits.argmax().item() == best)
    worst = next(t for t in logits.argsort().tolist() if t < len(tok) and t not in special)
    ((_, greedy),) = lm.loglikelihood([Req(docs[0]["q"], " " + tok.convert_ids_to_tokens(worst), to_visual, 0, T, S)])
    assert greedy is False


def test_loglikelihood_batched_equals_one_by_one(tiny, docs):
    reqs = [Req(d["q"], d["a"], to_visual, i, T, S) for i, d in enumerate(docs)]
    reqs.append(Req("", " red"))  # mutual-information scoring's unconditional request: no visual
    batched = adapter(tiny, docs, batch_size=4).loglikelihood(reqs)
    single = adapter(tiny, docs, batch_size=1).loglikelihood(reqs)
    assert [g for _, g in batched] == [g for _, g in single]
    assert [s for s, _ in batched] == pytest.approx([s for s, _ in single], abs=1e-4)


def test_lmms_eval_multiple_choice_rule_picks_the_most_likely_choice(tiny, docs):
    choices = [" red", " blue", " green", " yellow"]
    reqs = [Req(docs[0]["q"], c, to_visual, 0, T, S) for c in choices]
    nll = [s for s, _ in adapter(tiny, docs).loglikelihood(reqs)]
    logprob = [s for s, _ in adapter(tiny, docs, score="logprob").loglikelihood(reqs)]
    assert min(range(4), key=nll.__getitem__) == max(range(4), key=logprob.__getitem__)  # lmms-eval: np.argmin


def test_generate_until(tiny, docs):
    lm = adapter(tiny, docs, batch_size=3)
    gen = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}
    reqs = [Req(d["q"], dict(gen), to_visual, i, T, S) for i, d in enumerate(docs)]
    reqs += [Req(docs[0]["q"], {"max_new_tokens": 2, "min_new_tokens": 2}, to_visual, 0, T, S)]  # another group
    out = lm.generate_until(reqs)
    assert out == adapter(tiny, docs, batch_size=1).generate_until(reqs)  # batched == one by one, in request order
    assert len(lm.tokenizer(out[-1], add_special_tokens=False).input_ids) <= 2  # max_new_tokens honoured
    assert out[-1] == " ".join(out[0].split()[:2]) or out[0].startswith(out[-1])
    # <image> tags removed: the same prompt ids and answer as without them
    assert lm.prompt_ids(docs[0]["q"]) == lm.prompt_ids("What colour is the circle?")
    docs2 = [dict(docs[0], q="What colour is the circle?")]
    assert adapter(tiny, docs2).generate_until([Req(docs2[0]["q"], dict(gen), to_visual, 0, T, S)])[0] == out[0]
    # a stop string cuts the answer before its first occurrence
    word = out[0].split()[-1]
    cut = lm.generate_until([Req(docs[0]["q"], dict(gen, until=[word]), to_visual, 0, T, S)])[0]
    assert cut == out[0][: out[0].index(word)].strip() and word not in cut


def test_long_prompt_keeps_its_end_and_is_counted(tiny, docs):
    lm = adapter(tiny, docs, max_prompt_tokens=12)
    ids = lm.prompt_ids("a " * 30 + "what colour is the circle?")
    assert len(ids) == 12 and lm.truncated == 1 and ids[0] == lm.tokenizer.bos_token_id
    assert lm.tokenizer.decode(ids[-4:]).startswith("circle")


def test_multi_round(tiny, docs):
    lm = adapter(tiny, docs)
    calls = []

    def doc_to_text(doc, previous_output=None, round_idx=None, previous_round_info=None):
        calls.append((list(previous_output), round_idx, previous_round_info))
        done = round_idx == 2
        return doc["visual"], f"round {round_idx}: and then?", done, previous_output, {"n": round_idx}

    gen = {"max_new_tokens": 3, "min_new_tokens": 3}
    out = lm.generate_until_multi_round([Req(docs[0]["q"], gen, to_visual, doc_to_text, 0, T, S)])
    assert len(out) == 1 and len(out[0]) == 2 and all(isinstance(r, str) for r in out[0])
    assert [c[1] for c in calls] == [1, 2] and calls[1][2] == {"n": 1} and calls[1][0] == out[0]
    first = lm.generate_until([Req(docs[0]["q"], dict(gen), to_visual, 0, T, S)])[0]
    assert out[0][0] == first


def test_from_a_saved_folder_with_string_args(tiny, docs, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path / "m", tokenizer=tok)
    lm = LynxLite(pretrained=str(tmp_path / "m"), batch_size="2", device="cpu", max_new_tokens="4")
    lm.task_dict = {T: {S: docs}}
    assert lm.batch_size == 2 and lm.max_new_tokens == 4 and lm.device.type == "cpu"
    reqs = [Req(d["q"], d["a"], to_visual, i, T, S) for i, d in enumerate(docs)]
    assert [s for s, _ in lm.loglikelihood(reqs)] == pytest.approx(
        [s for s, _ in adapter(tiny, docs).loglikelihood(reqs)], abs=1e-4
    )
    with pytest.raises(TypeError, match="unknown model_args"):
        LynxLite(pretrained=str(tmp_path / "m"), temprature=0)
    with pytest.raises(ValueError, match="positive number"):
        LynxLite(model=model, tokenizer=tok, batch_size="auto")
    with pytest.raises(ValueError, match="score"):
        LynxLite(model=model, tokenizer=tok, score="loss")


def test_write_lmms_task(world, tmp_path):
    assert write_lmms_task(world, tmp_path) == ["shapes_vqa", "shapes_mc"]
    spec = importlib.util.spec_from_file_location("shapes_utils", tmp_path / "shapes_utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    vqa = [json.loads(line) for line in (tmp_path / "shapes_vqa.jsonl").read_text().splitlines()]
    mc = [json.loads(line) for line in (tmp_path / "shapes_mc.jsonl").read_text().splitlines()]
    assert len(mc) == 4 and all(d["options"][d["target"]] for d in mc) and vqa
    assert Path(vqa[0]["image"]).is_absolute() and utils.doc_to_visual(vqa[0])[0].mode == "RGB"
    assert utils.doc_to_text(vqa[0]).startswith("<image>\n" + vqa[0]["question"][:5])
    assert utils.doc_to_text(vqa[0], {"post_prompt": " Answer briefly."}).endswith(" Answer briefly.")
    assert utils.process_vqa(vqa[0], [" " + vqa[0]["answer"].title() + "."]) == {"exact_match": 1.0}
    assert utils.process_vqa(vqa[0], ["no idea"]) == {"exact_match": 0.0}
    y = (tmp_path / "shapes_mc.yaml").read_text()
    assert "output_type: multiple_choice" in y and "!function shapes_utils.doc_to_visual" in y
    assert json.dumps(str((tmp_path / "shapes_mc.jsonl").resolve())) in y
