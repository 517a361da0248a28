"""`check-data` against the training loader: media files per second on the same files, and the ratio.

The check decodes every file (Pillow, decord) on threads; the loader decodes, resizes and tokenizes each sample in
`num_workers` processes (`torch.utils.data.DataLoader`, as `train` runs it). The check must keep up with it.

python bench/check_data.py [--images 300] [--videos 20] [--workers 4]"""

import argparse, json, sys, tempfile, time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import save
from video_decode import write_clip


def write_data(folder: Path, images: int, videos: int) -> Path:
    "COCO-sized JPEGs (640x480) and 10 s 320x240 clips, with a captions file."
    from PIL import Image

    rng, rows = np.random.default_rng(0), []
    (folder / "images").mkdir(parents=True)
    for i in range(images):
        small = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)  # smooth content: compresses like a photo
        Image.fromarray(small).resize((640, 480), Image.BILINEAR).save(folder / f"images/{i}.jpg", quality=90)
        rows.append({"image": f"images/{i}.jpg", "caption": f"picture number {i}"})
    for i in range(videos):
        write_clip(folder / f"{i}.mp4", seconds=10, seed=i)
        rows.append({"video": f"{i}.mp4", "caption": f"clip number {i}"})
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder / "captions.jsonl"


def loader_rate(records, num_workers: int) -> float:
    "Samples per second of the training loader (LynxDataset + Collator in a DataLoader) over `records`, once."
    from torch.utils.data import DataLoader
    from lynx_lite.chat_format import tiny_tokenizer
    from lynx_lite.config import get_preset
    from lynx_lite.dataset import Collator, LynxDataset

    tok, cfg = tiny_tokenizer(), get_preset("tiny", **{"vision.image_size": 224})
    dl = DataLoader(LynxDataset(records, tok, cfg), batch_size=16, num_workers=num_workers,
                    collate_fn=Collator(tok.pad_token_id))  # fmt: skip
    t = time.perf_counter()
    n = sum(b["size"] for b in dl)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    from lynx_lite.check_data import media_problems
    from lynx_lite.records import load_pairs

    with tempfile.TemporaryDirectory() as d:
        records = load_pairs(write_data(Path(d), a.images, a.videos))
        t = time.perf_counter()
        assert media_problems(records, num_frames=5, workers=a.workers, progress=False) == []
        check = len(records) / (time.perf_counter() - t)
        loaders = {w: loader_rate(records, w) for w in (0, 2)}
    print(f"check-data ({a.workers} threads): {check:.1f} files/s")
    for w, rate in loaders.items():
        print(f"training loader, num_workers={w}: {rate:.1f} samples/s; check-data / loader = {check / rate:.2f}x")
    save("check_data", dict(files=len(records), check_files_per_s=check,
                            loader_samples_per_s={str(w): r for w, r in loaders.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
