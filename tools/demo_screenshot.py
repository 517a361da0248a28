"""The README's screenshot: the demo in headless Chromium on a trained model, asked a question about an image, a
follow-up, then (the image removed) a text-only question; the answers are printed beside the picture.

    python tools/demo_screenshot.py --model ~/.cache/lynx_lite/quickstart/smollm2-135m-instruct/model \
        --image ~/.cache/lynx_lite/quickstart/data/heldout/images/000000.png --out nbs/images/demo.png
"""

import argparse, os, shutil, time
from pathlib import Path

QUESTIONS = ("What colour is the circle?", "How many shapes are there?", "What is the capital of France?")
SETTLED = """async () => { let last = '', same = 0;  // the last answer unchanged for 2 s
  while (same < 20) { await new Promise(r => setTimeout(r, 100));
    const m = document.querySelectorAll('#chat .message.bot, #chat [data-testid="bot"]');
    const t = m.length ? m[m.length - 1].innerText.trim() : ''; same = t && t === last ? same + 1 : 0; last = t; }
  return last; }"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a folder written by save_pretrained")
    p.add_argument("--image", required=True, help="the image of the first two questions")
    p.add_argument("--examples", help="a shapes-world folder whose images the page offers as examples")
    p.add_argument("--out", default="nbs/images/demo.png")
    p.add_argument("--questions", nargs=3, default=QUESTIONS, metavar="Q")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright
    from lynx_lite.loading import load
    from lynx_lite.demo import build_demo, launch_demo
    from lynx_lite.lab.commands import shapes_examples

    model, tok = load(Path(args.model).expanduser())
    examples = shapes_examples(Path(args.examples).expanduser()) if args.examples else ()
    demo = build_demo(model, tok, examples=examples, title="lynx_lite")
    launch_demo(demo, block=False)
    chromium = os.environ.get("LYNX_CHROMIUM") or shutil.which("chromium")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(demo.local_url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.locator("#image input[type=file]").set_input_files(str(Path(args.image).expanduser()))
            page.wait_for_selector("#image img", timeout=30_000)
            for i, q in enumerate(args.questions):
                if i == 2:  # the last question has no image
                    page.locator("#image button[aria-label='Remove Image']").first.click()
                    page.wait_for_function("() => !document.querySelector('#image img')", timeout=30_000)
                page.locator("#question textarea").fill(q)
                page.locator("#send").click()
                time.sleep(1)
                print(f"{q} -> {page.evaluate(SETTLED)}")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
