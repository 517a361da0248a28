"""The demo in a real headless Chromium (Debian's `chromium`, driven by playwright): upload an image, ask, watch the
answer stream in. Runs where `.ci/run` installed chromium; skipped (with the reason) elsewhere."""

import os, re, shutil, time
from pathlib import Path
import pytest, torch
from lynx_lite.config import get_preset
from lynx_lite.demo import build_demo, chat_once, launch_demo
from lynx_lite.lab.commands import shapes_examples
from lynx_lite.model import LynxModel, configure_tokens
from lynx_lite.lab.shapes import write_dataset

CHROMIUM = os.environ.get("LYNX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("LYNX_REQUIRE_BROWSER") == "1"  # set by .ci/run, which installs chromium: there it must run
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not REQUIRED, reason="no chromium: `apt-get install -y chromium` (.ci/run does)"
    ),
]

# Records every text the last bot message shows, so the test sees the answer grow token by token.
WATCH = """() => { window.__states = [];
  new MutationObserver(() => { const m = document.querySelectorAll('#chat .message.bot, #chat [data-testid="bot"]');
    if (m.length) { const t = m[m.length - 1].innerText.trim();
      if (t && window.__states.at(-1) !== t) window.__states.push(t); } })
  .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def test_chromium_uploads_asks_and_sees_a_streamed_answer(tmp_path, tok):
    assert CHROMIUM, "LYNX_REQUIRE_BROWSER=1 but no chromium found: `apt-get install -y chromium` or set LYNX_CHROMIUM"
    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    write_dataset(data, n_images=2, n_videos=1, seed=0, progress=False)
    torch.manual_seed(0)
    model = LynxModel(get_preset("tiny")).eval()
    configure_tokens(model, tok)
    forward = model.llm.forward

    def slow_forward(*a, **k):  # one decoding step every 50 ms, so that partial answers reach the page
        time.sleep(0.05)
        return forward(*a, **k)

    model.llm.forward = slow_forward
    img, question = str(data / "images/000000.png"), "what colour is the circle?"
    demo = build_demo(model, tok, examples=shapes_examples(data))
    launch_demo(demo, block=False)
    shot = Path(os.environ.get("LYNX_SCREENSHOT_DIR", tmp_path)) / "demo.png"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo.local_url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.locator("#image input[type=file]").set_input_files(img)
            page.wait_for_selector("#image img", timeout=30_000)
            page.evaluate(WATCH)
            page.locator("#question textarea").fill(question)
            page.locator("#send").click()
            page.wait_for_function("() => window.__states.length > 0", timeout=120_000)
            final = page.evaluate("""async () => { let last = '', same = 0;  // settled: unchanged for 2 s
                while (same < 20) { await new Promise(r => setTimeout(r, 100)); const t = window.__states.at(-1);
                  same = t === last ? same + 1 : 0; last = t; } return window.__states; }""")
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        demo.close()
    model.llm.forward = forward
    expected = chat_once(model, tok, question, img)
    words = lambda s: re.findall(r"\w+", s)  # the chatbot renders markdown; compare the words
    assert final[-1] and words(final[-1]) == words(expected)  # the page shows what the model answers
    steps = [words(t) for t in final if words(t) and t != "Loading content"]
    assert len(steps) >= 3, final  # it grew in steps on the page ...
    assert all(w[:-1] == words(expected)[: len(w) - 1] for w in steps), final  # ... each one a beginning of the answer
    assert shot.stat().st_size > 10_000
