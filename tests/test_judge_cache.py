"""A judge that is paid once (issue 25, item 3): the HTTP and HF judges' replies are cached by judge kind, model id and
prompt, so scoring again (or a resumed run) sends no request twice; the cache file is shared safely by runs in several
processes at once; `results.json` counts the cache's hits and misses."""

import json, subprocess, sys, textwrap, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import pytest, torch
from lynx_lite.evaluate import evaluate
from lynx_lite.judges import HFJudge, HTTPJudge
from lynx_lite.lab.shapes import write_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    write_dataset(d, n_images=6, n_videos=0, seed=3, progress=False)
    return d


@pytest.fixture
def endpoint():
    "A local OpenAI-compatible endpoint whose verdict depends on the prompt; counts the requests it gets."
    seen, lock = [], threading.Lock()

    class Fake(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                seen.append(body)
            time.sleep(0.001)  # a reply takes a while: runs in other processes interleave
            prompt = body["messages"][-1]["content"]
            text = f"{'yes' if len(prompt) % 2 else 'no'}, reply {len(prompt)} from {body['model']}"
            out = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", seen
    server.shutdown()


def guess(recs):  # a stand-in model: one answer per question
    return ["red" if i % 2 else "a blue square" for i, _ in enumerate(recs)]


def test_scoring_again_sends_no_request(world, tmp_path, endpoint):
    url, seen = endpoint
    cache = tmp_path / "judge_cache.jsonl"
    judge = lambda: HTTPJudge(url, model="fake", cache=cache, backoff=0.01)  # a new judge: as a new process has
    first = evaluate(None, None, "openvqa", world, tmp_path / "a", answer_fn=guess, judge=judge(), limit=6)
    assert len(seen) == 6 and first["judge"]["cache"] == {"hits": 0, "misses": 6}
    again = evaluate(None, None, "openvqa", world, tmp_path / "a", answer_fn=guess, judge=judge(), limit=6)
    elsewhere = evaluate(None, None, "openvqa", world, tmp_path / "b", answer_fn=guess, judge=judge(), limit=6)
    assert len(seen) == 6  # not one request more
    for res in (again, elsewhere):
        assert res["judge"]["cache"] == {"hits": 6, "misses": 0} and res["metrics"] == first["metrics"]
    reviews = evaluate(None, None, "llavabench", world, tmp_path / "c", answer_fn=guess, judge=judge(), limit=2)
    assert len(seen) == 6 + 2 and reviews["judge"]["cache"] == {"hits": 0, "misses": 2}
    shared = judge()  # one judge for two benches (as `lynx-lite eval` has): each bench counts its own replies
    evaluate(None, None, "openvqa", world, tmp_path / "d", answer_fn=guess, judge=shared, limit=6)
    res = evaluate(None, None, "llavabench", world, tmp_path / "d", answer_fn=guess, judge=shared, limit=3)
    assert res["judge"]["cache"] == {"hits": 2, "misses": 1} and len(seen) == 6 + 3


def test_eval_command_rerun_sends_no_request(world, tmp_path, endpoint, monkeypatch):
    from lynx_lite.chat_format import tiny_tokenizer
    from lynx_lite.cli import main
    from lynx_lite.config import get_preset
    from lynx_lite.model import LynxModel

    url, seen = endpoint
    torch.manual_seed(0)
    LynxModel(get_preset("tiny")).save_pretrained(tmp_path / "model", tokenizer=tiny_tokenizer())
    monkeypatch.setenv("HOME", str(tmp_path))  # the default cache, ~/.cache/lynx_lite/judge_cache.jsonl
    # fmt: off
    args = ["eval", "--model", str(tmp_path / "model"), "--data", str(world), "--bench", "openvqa", "--judge", "http",
            "--judge-base-url", url, "--judge-model", "fake", "--limit", "3", "--generate", "max_new_tokens=3"]
    # fmt: on
    assert main([*args, "--out", str(tmp_path / "run")]) == 0 and len(seen) == 3
    assert main([*args, "--out", str(tmp_path / "run")]) == 0 and len(seen) == 3  # answers and verdicts reused
    res = json.loads((tmp_path / "run/results.json").read_text())
    assert res["judge"]["cache"] == {"hits": 3, "misses": 0} and res["answers"]["reused"] == 3
    assert (tmp_path / ".cache/lynx_lite/judge_cache.jsonl").exists()


def test_the_key_has_the_judge_kind_and_model(tmp_path, endpoint, tok):
    url, seen = endpoint
    cache = tmp_path / "judge_cache.jsonl"
    ask = lambda j: j("What colour?", ["red"], "red")
    a = ask(HTTPJudge(url, model="judge-a", cache=cache))
    b = ask(HTTPJudge(url, model="judge-b", cache=cache))
    assert len(seen) == 2 and "judge-a" in a.reason and "judge-b" in b.reason  # another model: its own reply
    assert ask(HTTPJudge(url, model="judge-a", cache=cache)) == a and len(seen) == 2
    review = HTTPJudge(url, model="judge-a", cache=cache, review_max_tokens=100)
    review.review("q", "ctx", "ref", "ans")
    review.review("q", "ctx", "ref", "ans")
    assert len(seen) == 3 and (review.hits, review.misses) == (1, 1)

    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                               num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    lm, generated = AutoModelForCausalLM.from_config(cfg).eval(), []
    real = lm.generate
    lm.generate = lambda *a, **k: generated.append(1) or real(*a, **k)
    local = lambda name: HFJudge(lm, tok, max_new_tokens=64, name=name, cache=cache)  # as long as the HTTP verdict
    v = ask(local("judge-a"))  # an HF judge whose id is an HTTP judge's model: its own reply, not the HTTP one
    assert len(generated) == 1 and v != a
    assert ask(local("judge-a")) == v and len(generated) == 1  # a later HF judge of that id: cached
    ask(local("judge-c"))
    assert len(generated) == 2
    ask(HFJudge(lm, tok, max_new_tokens=2, cache=cache))  # no model id: nothing written to the shared file
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [(r["judge"], r["model"]) for r in rows] == [("http", "judge-a"), ("http", "judge-b"), ("http", "judge-a"),
                                                        ("hf", "judge-a"), ("hf", "judge-c")]  # fmt: skip


RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from lynx_lite.judges import HTTPJudge

    url, cache, lo, hi, go = sys.argv[1:]
    Path(f"{go}-{lo}").touch()  # ready
    while not Path(go).exists():
        time.sleep(0.001)
    judge = HTTPJudge(url, model="fake", cache=cache, backoff=0.01)
    print(json.dumps({k: judge(f"question {k}?", ["red"], "x" * k).reason for k in range(int(lo), int(hi))}))
    """
)


def test_two_processes_judging_at_once(tmp_path, endpoint):
    url, seen = endpoint
    cache, go = tmp_path / "judge_cache.jsonl", tmp_path / "go"
    run = lambda lo, hi: [sys.executable, "-c", RUN, url, str(cache), lo, hi, str(go)]
    spans = (("0", "120"), ("60", "180"))  # 60 questions in common
    runs = [subprocess.Popen(run(lo, hi), stdout=subprocess.PIPE, text=True) for lo, hi in spans]
    while not all((tmp_path / f"go-{lo}").exists() for lo in ("0", "60")):
        time.sleep(0.01)  # until both are ready, then at once
    go.touch()
    replies = {}
    for p in runs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        replies |= {int(k): v for k, v in json.loads(out).items()}
    lines = cache.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line parses
    assert cache.read_text().endswith("\n") and 180 <= len(rows) == len(seen) <= 180 + 60
    asked = len(seen)
    judge = HTTPJudge(url, model="fake", cache=cache)
    assert {k: judge(f"question {k}?", ["red"], "x" * k).reason for k in range(180)} == replies
    assert len(seen) == asked and (judge.hits, judge.misses) == (180, 0)  # no reply lost


def test_a_writer_killed_mid_line_loses_no_later_reply(tmp_path, endpoint):
    url, seen = endpoint
    cache = tmp_path / "judge_cache.jsonl"
    HTTPJudge(url, model="fake", cache=cache)("q1", ["red"], "red")
    with open(cache, "a") as f:
        f.write('{"key": "abc", "judge": "http", "te')  # a run killed while writing
    HTTPJudge(url, model="fake", cache=cache)("q2", ["red"], "red")
    lines = cache.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["text"]  # the reply after the torn line is a line of its own
    again = HTTPJudge(url, model="fake", cache=cache)
    again("q1", ["red"], "red"), again("q2", ["red"], "red")
    assert len(seen) == 2 and again.hits == 2
