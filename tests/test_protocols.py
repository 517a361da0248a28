"""The field's protocols (issue 16, section 2): POPE, LLaVA-Bench, CircularEval (MMBench TSV, SEED-Bench JSON) and
multi-turn conversation; each metric on a fixture computed by hand, each protocol run with a stub model whose scores
are known in advance, each reader on the benchmark's own format, each writer in the shapes world."""

import base64, io, json
import pytest, torch
from PIL import Image
from lynx_lite.evaluate import BENCHES, evaluate
from lynx_lite.judges import HFJudge, HTTPJudge, RuleJudge
from lynx_lite.lab.shapes import write_dataset
from lynx_lite.metrics import (
    circular_scores,
    circular_variants,
    llavabench_scores,
    parse_review_scores,
    pope_label,
    pope_scores,
)
from lynx_lite.records import MCQ_INSTRUCTION, SkipLog, load_conversation_bench, load_mmbench, load_seedbench


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    write_dataset(d, n_images=8, n_videos=0, seed=11, progress=False)
    return d


def png_b64(color=(200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# --- POPE ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, label",
    [
        ("Yes", "yes"),
        ("No.", "no"),
        ("There is no dog in the image.", "no"),  # MME's rule would say 'other'
        ("no, there is not", "no"),
        ("Yes. It is not small.", "yes"),  # only the first sentence counts
        ("I am not sure", "no"),
        ("Not really", "yes"),  # POPE's list has "No", "no", "not": not "Not"
        ("Nope", "yes"),
        ("", "yes"),
    ],
)
def test_pope_rule(answer, label):
    assert pope_label(answer) == label


def test_pope_scores_by_hand():
    # labels y y y n n n; answers yes no yes yes no no -> TP 2, FN 1, FP 1, TN 2
    s = pope_scores(["yes"] * 3 + ["no"] * 3, ["Yes", "No", "yes", "Yes.", "no", "There is no cat"])
    assert (s["tp"], s["fn"], s["fp"], s["tn"]) == (2, 1, 1, 2)
    assert s["accuracy"] == pytest.approx(4 / 6) and s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(2 / 3) and s["yes_ratio"] == 0.5
    # 1 yes label out of 4, always yes: precision 1/4 = the positive rate
    s = pope_scores(["yes", "no", "no", "no"], ["yes"] * 4)
    assert (s["yes_ratio"], s["recall"], s["precision"], s["f1"]) == (1.0, 1.0, 0.25, pytest.approx(0.4))
    with pytest.raises(ValueError, match="yes or no"):
        pope_scores(["maybe"], ["yes"])


def test_pope_always_yes_stub(world, tmp_path):
    res = evaluate(None, None, "pope", world, tmp_path, answer_fn=lambda recs: ["yes"] * len(recs))
    splits = res["metrics"]["splits"]
    assert sorted(splits) == ["adversarial", "popular", "random"]
    for s in splits.values():  # the shapes world's splits are balanced: precision = positive rate = 0.5
        assert (s["yes_ratio"], s["recall"], s["precision"]) == (1.0, 1.0, 0.5)
    lines = [json.loads(line) for line in (tmp_path / "pope_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == res["n"] == res["prompts"] and {x["answer"] for x in lines} == {"yes"}


def test_pope_limit_is_per_split(world, tmp_path):
    res = evaluate(None, None, "pope", world, tmp_path, limit=4, answer_fn=lambda recs: ["no"] * len(recs))
    assert res["n"] == 12 and all(s["n"] == 4 for s in res["metrics"]["splits"].values())


# --- LLaVA-Bench --------------------------------------------------------------------------------------------------


def test_review_scores_parsed():
    assert parse_review_scores("8 6\nAssistant 1 is more precise.") == (8.0, 6.0)
    assert parse_review_scores("8, 6") == (8.0, 6.0) and parse_review_scores("7.5 9") == (7.5, 9.0)
    assert parse_review_scores("Assistant 1: 8") is None and parse_review_scores("8 6 5") is None


def test_llavabench_scores_by_hand():
    # conv: (8, 6), (6, 6) -> 6 / 7 = 85.71; detail: (10, 5) -> 50; all pools 3 rows: 17/3 over 8 -> 70.83
    s = llavabench_scores([("conv", 8, 6), ("conv", 6, 6), ("detail", 10, 5), ("complex", None, None)])
    assert s["conv"]["relative"] == pytest.approx(600 / 7) and s["detail"]["relative"] == 50.0
    assert s["all"]["relative"] == pytest.approx(100 * 17 / 24) and (s["all"]["n"], s["all"]["unparsed"]) == (3, 1)
    assert (s["all"]["reference"], s["all"]["model"]) == (8.0, pytest.approx(17 / 3))


def test_llavabench_reference_answers_score_100(world, tmp_path):
    res = evaluate(
        None, None, "llavabench", world, tmp_path, answer_fn=lambda recs: [r.meta["reference"] for r in recs]
    )
    cats = res["metrics"]["categories"]
    assert sorted(cats) == ["all", "complex", "conv", "detail"] and res["n"] == 3 * 8
    assert all(v["relative"] == pytest.approx(100.0) for v in cats.values())
    reviews = [json.loads(line) for line in (tmp_path / "llavabench_reviews.jsonl").read_text().splitlines()]
    assert reviews[0]["tuple"] == [10.0, 10.0] and res["judge"]["kind"] == "rule"  # LLaVA's review file layout


def test_llavabench_http_judge(chat_endpoint):
    url, seen = chat_endpoint(lambda body: "9 4\nAssistant 2 misses the colour.")
    judge = HTTPJudge(url, model="fake", cache=None)
    r = judge.review("What is it?", "a red circle", "A red circle.", "A circle.")
    assert (r.reference, r.answer) == (9.0, 4.0)
    content = seen[0]["messages"][1]["content"]
    assert "[Context]\na red circle" in content and "[Assistant 2]\nA circle." in content
    assert seen[0]["messages"][0]["role"] == "system" and judge.describe()["kind"] == "http"


def test_llavabench_hf_judge(tok):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model(
        "llama",
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    lm = AutoModelForCausalLM.from_config(cfg).eval()
    seven = tok.convert_tokens_to_ids("7")
    hook = lm.lm_head.register_forward_hook(
        lambda mod, args, out: out + 100 * torch.nn.functional.one_hot(torch.tensor(seven), out.shape[-1])
    )
    try:
        r = HFJudge(lm, tok, review_max_new_tokens=2, name="tiny").review("q", "a red circle", "A red circle.", "x")
    finally:
        hook.remove()
    assert (r.reference, r.answer) == (7.0, 7.0)


# --- CircularEval -------------------------------------------------------------------------------------------------


def test_circular_by_hand():
    assert circular_variants(["red", "blue", "green"], "C") == [
        (["red", "blue", "green"], "C"),
        (["blue", "green", "red"], "B"),
        (["green", "red", "blue"], "A"),
    ]
    s = circular_scores([[("A", "A"), ("C", "C")], [("B", "B"), (None, "A")]])
    assert (s["plain"]["correct"], s["circular"]["correct"], s["all_rotations"]["correct"], s["unparsed"]) == (
        2,
        1,
        3,
        1,
    )


def test_always_a_on_balanced_questions(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    rows = [
        dict(image="x.png", question=f"q{i}?", options=["w", "x", "y", "z"], answer=a) for i, a in enumerate("ABCD")
    ]
    (tmp_path / "mcq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = evaluate(None, None, "mcq", tmp_path, tmp_path / "out", answer_fn=lambda recs: ["A"] * len(recs))["metrics"]
    assert (m["accuracy"], m["circular"]["accuracy"], m["all_rotations"]["accuracy"]) == (0.25, 0.0, 0.25)
    plain = evaluate(None, None, "mcq", tmp_path, tmp_path / "o2", circular=False, answer_fn=lambda r: ["a."] * len(r))
    m2 = plain["metrics"]  # "a.": a miss under MMBench's rule (a lower-case letter is no option), a hit when lenient
    assert (m2["accuracy"], m2["lenient"]["accuracy"], m2["readings_differ"]) == (0.0, 0.25, 4)
    assert not m2["circular_eval"] and plain["prompts"] == 4


def test_mmbench_tsv_with_its_own_rotations(tmp_path):
    head = "index\tquestion\thint\tA\tB\tC\tanswer\tcategory\tl2-category\tsplit\timage\n"
    img = png_b64()
    rows = [
        ["7", "Colour?", "nan", "red", "blue", "green", "A", "color", "attribute", "dev", img],
        ["1000007", "Colour?", "nan", "blue", "green", "red", "C", "color", "attribute", "dev", "7"],
        ["2000007", "Colour?", "nan", "green", "red", "blue", "B", "color", "attribute", "dev", "7"],
        ["8", "Shape?", "A drawing.", "circle", "square", "", "B", "shape", "attribute", "dev", png_b64((0, 0, 200))],
    ]
    (tmp_path / "MMBench_DEV_EN.tsv").write_text(head + "".join("\t".join(r) + "\n" for r in rows))
    recs = load_mmbench(tmp_path / "MMBench_DEV_EN.tsv")
    assert [(r.meta["group"], r.meta["answer"]) for r in recs] == [(7, "A"), (7, "C"), (7, "B"), (8, "B")]
    assert recs[0].image == recs[2].image and recs[0].image.suffix == ".png"
    assert recs[3].turns[0][0] == f"A drawing.\nShape?\nA. circle\nB. square\n{MCQ_INSTRUCTION}"

    def says_red(recs):  # picks the letter of "red": right on every rotation of question 7
        return [
            next(l for l, o in zip("ABC", r.meta["options"]) if o == "red") if "red" in r.meta["options"] else "x"
            for r in recs
        ]

    res = evaluate(None, None, "mmbench", tmp_path, tmp_path / "out", answer_fn=says_red)
    m = res["metrics"]
    assert res["n"] == 2 and res["prompts"] == 3 + 1  # the file's three rotations of 7; question 8 as published
    assert (m["accuracy"], m["circular"]["correct"], m["unparsed"]) == (0.5, 1, 1)
    assert m["per_category"]["color"]["accuracy"] == 1.0


def test_seedbench_json(tmp_path):
    q = dict(question="How many?", choice_a="One", choice_b="Two", choice_c="Three", choice_d="Four", answer="C")
    data = {
        "questions": [
            dict(q, data_id="a.jpg", data_type="image", question_id="1", question_type_id=5),
            dict(q, data_id="v.mp4", data_type="video", question_id="2", question_type_id=11),
        ],
        "question_type": {"Instance Counting": 5, "Action Prediction": 11},
    }
    (tmp_path / "SEED-Bench.json").write_text(json.dumps(data))
    skips = SkipLog()
    recs = load_seedbench(tmp_path / "SEED-Bench.json", skips=skips)
    assert len(recs) == 1 and dict(skips.counts) == {"video_question": 1}
    assert recs[0].image == tmp_path / "SEED-Bench-image/a.jpg" and recs[0].meta["category"] == "Instance Counting"
    assert "C. Three" in recs[0].turns[0][0]


# --- multi-turn conversation --------------------------------------------------------------------------------------


def test_conversation_turn_by_turn(world, tmp_path):
    asked = []

    def stub(recs):  # the reference on turn 1, then "I do not know"
        asked.extend(recs)
        return [r.meta["references"][0] if len(r.turns) == 1 else "I do not know" for r in recs]

    res = evaluate(None, None, "conversation", world, tmp_path, answer_fn=stub)
    m = res["metrics"]
    assert [m["per_turn"][k]["accuracy"] for k in (1, 2, 3)] == [1.0, 0.0, 0.0] and m["conversations"]["accuracy"] == 0
    assert res["n"] == 8 and res["prompts"] == 8 * 3 and res["judge"]["kind"] == "rule"
    third = [r for r in asked if len(r.turns) == 3]
    assert third and all(r.turns[0][1] == r.meta["references"][0] and r.turns[1][1] == "I do not know" for r in third)
    assert all(r.turns[-1][1] is None for r in asked)  # the question asked has no answer yet


def test_conversation_turns_are_judged_with_their_kind(world, tmp_path):
    "A turn answered with every colour is a hedge: the other colours of the file are the judge's candidates."
    convs = load_conversation_bench(world / "conversation.json")
    colours = sorted({r.turns[0][1] for r in convs})
    res = evaluate(None, None, "conversation", world, tmp_path, answer_fn=lambda recs: [" ".join(colours)] * len(recs))
    assert len(colours) > 1 and res["metrics"]["per_turn"][1]["correct"] == 0


# --- the shapes world writes each benchmark ------------------------------------------------------------------------


def test_shapes_world_writes_every_benchmark(world):
    pope = [json.loads(line) for line in (world / "shapes_pope_random.json").read_text().splitlines()]
    assert pope and sum(p["label"] == "yes" for p in pope) * 2 == len(pope)
    assert all(p["text"].startswith("Is there a ") for p in pope)
    questions = (world / "llava_bench/questions.jsonl").read_text().splitlines()
    assert [json.loads(q)["category"] for q in questions[:3]] == ["conv", "detail", "complex"]
    convs = json.loads((world / "conversation.json").read_text())
    assert [t.get("task") for t in convs[0]["conversations"][1::2]] == ["color", "position", "size"]
    assert len(load_mmbench(world / "mmbench.tsv")) == len(load_seedbench(world / "seed_bench/SEED-Bench.json")) == 8


def test_every_bench_has_a_prompt_limit_and_files():
    assert all(b.files and b.max_prompt_tokens > 48 for b in BENCHES.values())
    assert {"pope", "llavabench", "mcq", "mmbench", "seedbench", "conversation"} <= set(BENCHES)
    assert [k for k, b in BENCHES.items() if b.judge] == ["openvqa", "videoqa", "llavabench", "conversation"]
    assert RuleJudge().describe()["prompt_version"]
