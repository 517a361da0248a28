"The quickstart command, shortened (`--smoke`): every step runs, the table prints, a second run reuses the steps."

import json, subprocess, sys
from lynx_lite.metrics import wilson_interval

CLI = [sys.executable, "-m", "lynx_lite.cli"]  # the command line, through the running interpreter (never skipped)


def test_quickstart_smoke(tmp_path):
    r = subprocess.run(
        [*CLI, "quickstart", "--smoke", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for task in ("color", "shape", "count", "position", "motion"):
        assert task in r.stdout
    assert "MME-style score" in r.stdout
    s = json.loads((tmp_path / "quickstart.json").read_text())
    assert set(s["chance"]) == {"color", "shape", "count", "position", "size", "motion"}
    # every accuracy with its n and 95% interval, in the JSON and in the printed table
    assert "95% CI" in r.stdout and f"{s['ci95']['color'][0]:.1%}–{s['ci95']['color'][1]:.1%}" in r.stdout
    for t, n in s["n"].items():
        assert s["accuracy"][t] == s["correct"][t] / n and s["ci95"][t] == list(wilson_interval(s["correct"][t], n))
    assert all(v["n"] == 2 * v["n_images"] and len(v["acc_ci95"]) == 2 for v in s["mme"]["subtasks"].values())
    again = subprocess.run(
        [*CLI, "quickstart", "--smoke", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    # reused: the two worlds, tower, LLM, both stages, the served model, the evaluation and the benchmarks
    assert again.returncode == 0 and again.stdout.count("reusing") == 9


def test_demo_without_checkpoint_serves_the_quickstart_model(tmp_path):
    "`lynx-lite demo` with no --model trains the (smoke) quickstart where it is missing, then serves its model."
    import socket, time
    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        [*CLI, "demo", "--smoke", "--quickstart-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in p.stdout:  # the quickstart's steps run first, then the server starts
            lines.append(line)
            if line.startswith("serving on"):
                break
        assert lines and lines[-1].strip() == f"serving on http://127.0.0.1:{port}", "".join(lines)[-2000:]
        assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "quickstart.json").exists()
        img = next((tmp_path / "data" / "heldout" / "images").glob("*.png"))
        for _ in range(120):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        answer = client.predict("what colour is the circle?", handle_file(str(img)), None, 4, api_name="/answer")
        assert isinstance(answer, str) and answer
    finally:
        p.terminate()
        p.wait(timeout=30)
