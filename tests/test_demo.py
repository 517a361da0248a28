"The demo app and the chat command on a tiny model: launched on 127.0.0.1, concurrent clients, one-off answers."

import subprocess, sys, threading
import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.demo import build_demo, chat_once, launch_demo
from lynx_lite.model import LynxModel, configure_tokens
from lynx_lite.lab.shapes import write_dataset

CLI = [sys.executable, "-c", "import sys; from lynx_lite.cli import main; sys.exit(main())"]  # no PATH lookup


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tok):
    d = tmp_path_factory.mktemp("demo")
    write_dataset(d / "data", n_images=2, n_videos=1, seed=0, progress=False)
    torch.manual_seed(0)
    model = LynxModel(get_preset("tiny")).eval()
    configure_tokens(model, tok)
    model.save_pretrained(d / "model", tokenizer=tok)
    return d, model


def test_blocks_build_without_launching(setup, tok):
    d, model = setup
    demo = build_demo(model, tok, examples=[("what colour?", str(d / "data/images/000000.png"))])
    assert {"chat", "answer"} <= {dep.get("api_name") for dep in demo.config["dependencies"] if dep.get("api_name")}


def test_eight_concurrent_clients_get_answers(setup, tok):
    "Eight clients at once, each with its own question, image (or none) and length: each gets its own answer."
    from gradio_client import Client, handle_file

    d, model = setup
    images = [str(d / "data/images/000000.png"), str(d / "data/images/000001.png"), None]
    asks = [(f"question {i}: what colour?", images[i % 3], 2 + i) for i in range(8)]
    expected = [chat_once(model, tok, q, img, max_new_tokens=n) for q, img, n in asks]
    assert len(set(expected)) == 8  # all different: an answer given to the wrong client would show
    demo = build_demo(model, tok)
    launch_demo(demo, port=None, block=False, concurrency=4)
    try:
        assert demo.local_url.startswith("http://127.0.0.1:")
        answers, errors = [None] * 8, []

        def ask(i):
            q, img, n = asks[i]
            try:
                answers[i] = Client(demo.local_url, verbose=False).predict(
                    q, img and handle_file(img), None, n, api_name="/answer"
                )
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not errors, errors
        assert answers == expected  # the server answers each client what the model answers to its input
    finally:
        demo.close()


def test_chat_command(setup):
    d, model = setup
    r = subprocess.run(
        [
            *CLI,
            "chat",
            "--model",
            str(d / "model"),
            "--video",
            str(d / "data/videos/000002.mp4"),
            "--generate",
            "max_new_tokens=3",
            "what moves?",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.strip(), r.stderr[-2000:]
    bad = subprocess.run([*CLI, "chat", "--image", "x.png", "what?"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--model" in bad.stderr
