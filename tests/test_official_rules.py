"Benchmarks scored by their authors' rules by default, the lenient reading beside: each rule where it differs."

import shutil
from pathlib import Path
import pytest
from lynx_lite.evaluate import evaluate
from lynx_lite.metrics import can_infer, llava_review_scores, llavabench_official, parse_choice, seed_exact

OPTS = ["red", "blue", "green", "yellow"]
WORLD = Path(__file__).parent.parent / "nbs" / "data" / "shapes_test"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Path(shutil.copytree(WORLD, tmp_path_factory.mktemp("w") / "w"))  # MMBench writes its images beside it


@pytest.mark.parametrize(
    "answer, official, lenient",
    [("B", "B", "B"), ("b", None, "B"), ("(C) green", "C", "C"), ("B.", "B", "B"), ("A or B", None, None),
     ("it is yellow", "D", "D"), ("Answer: d", None, "D")],
)  # fmt: skip
def test_mmbench_can_infer(answer, official, lenient):
    assert (can_infer(answer, OPTS), parse_choice(answer, OPTS)) == (official, lenient)


def test_seed_exact_letter():
    assert [seed_exact(a, OPTS) for a in ("C", "c", "C.", " C")] == ["C", None, None, None]


def test_llava_review_parse_and_average():
    assert llava_review_scores("7 9\nbecause") == (7.0, 9.0)
    assert llava_review_scores("7, 9") == (-1.0, -1.0) and llava_review_scores("Assistant 1: 7") == (-1.0, -1.0)
    s = llavabench_official([("conv", 8.0, 6.0), ("conv", -1.0, -1.0)])["conv"]
    assert s["unparsed"] == 1 and s["relative"] == pytest.approx(100 * 2.5 / 3.5)


def test_results_name_the_rule_and_carry_the_lenient_figure(world, tmp_path):
    lower = lambda recs: [r.meta["answer"].lower() for r in recs]
    m = evaluate(None, None, "mmbench", world, tmp_path / "mmb", answer_fn=lower, progress=False)["metrics"]
    assert (m["accuracy"], m["lenient"]["accuracy"], m["circular_eval"]) == (0.0, 1.0, True)
    assert m["rule"]["name"] == "official-mmbench" and "matching_util.py" in m["rule"]["source"]
    assert m["readings_differ"] == m["all_rotations"]["n"]
    dotted = lambda recs: [r.meta["answer"] + "." for r in recs]
    s = evaluate(None, None, "seedbench", world, tmp_path / "seed", answer_fn=dotted, progress=False)["metrics"]
    assert (s["accuracy"], s["lenient"]["accuracy"], s["circular_eval"]) == (0.0, 1.0, False)  # asked once


def test_the_lenient_rule_on_request(world, tmp_path):
    lower = lambda recs: [r.meta["answer"].lower() for r in recs]
    m = evaluate(None, None, "mcq", world, tmp_path / "mcq", answer_fn=lower, progress=False, choice_rule="lenient")
    assert m["metrics"]["accuracy"] == 1.0 and m["metrics"]["rule"]["name"] == "lenient"
