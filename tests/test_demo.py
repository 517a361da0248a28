"The demo app and the chat command on a tiny model: launched on 127.0.0.1, concurrent clients, one-off answers."

import shutil, subprocess, threading
import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.demo import build_demo, chat_once, launch_demo
from lynx_lite.model import LynxModel, configure_tokens
from lynx_lite.lab.shapes import write_dataset

EXE = shutil.which("lynx-lite")


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
    from gradio_client import Client, handle_file

    d, model = setup
    demo = build_demo(model, tok)
    launch_demo(demo, port=None, block=False, concurrency=4)
    try:
        assert demo.local_url.startswith("http://127.0.0.1:")
        img = str(d / "data/images/000001.png")
        answers, errors = [None] * 8, []

        def ask(i):
            try:
                answers[i] = Client(demo.local_url, verbose=False).predict(
                    f"question {i}: what colour?", handle_file(img), None, 4, api_name="/answer"
                )
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not errors and all(isinstance(a, str) and a for a in answers)
        expected = chat_once(model, tok, "question 0: what colour?", img, max_new_tokens=4)
        assert answers[0] == expected  # the server answers what the model answers
    finally:
        demo.close()


@pytest.mark.skipif(EXE is None, reason="lynx-lite is not installed")
def test_chat_command(setup):
    d, model = setup
    r = subprocess.run(
        [
            EXE,
            "chat",
            "--checkpoint",
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
    bad = subprocess.run([EXE, "chat", "--image", "x.png", "what?"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--checkpoint" in bad.stderr
