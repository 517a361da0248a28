"""decord vs PyAV: 5 uniformly sampled frames per video (the paper's video input), videos per second and the ratio.

python bench/video_decode.py [--videos 20] [--seconds 10]"""

import argparse, sys, tempfile
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import save, timed
from lynx_lite.media import read_video


def write_clip(path: Path, seconds: int, fps: int = 30, size: tuple[int, int] = (320, 240), seed: int = 0) -> None:
    "An H.264 mp4 with moving content (so that frames differ and compress like video)."
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] * 2, size[0] * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for t in range(seconds * fps):
            frame = base[t % size[1] : t % size[1] + size[1], (2 * t) % size[0] : (2 * t) % size[0] + size[0]]
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--frames", type=int, default=5)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    paths = [d / f"{i}.mp4" for i in range(a.videos)]
    for i, p in enumerate(paths):
        write_clip(p, a.seconds, seed=i)
    same = all(
        np.array_equal(read_video(p, a.frames, "decord").shape, read_video(p, a.frames, "pyav").shape)
        for p in paths[:2]
    )
    t = {b: timed(lambda b=b: [read_video(p, a.frames, b) for p in paths], repeat=3) for b in ("decord", "pyav")}
    rows = {b: dict(seconds=t[b], videos_per_s=a.videos / t[b], frames_per_s=a.videos * a.frames / t[b]) for b in t}
    ratio = t["pyav"] / t["decord"]
    print(
        f"{a.videos} videos of {a.seconds} s (320x240, 30 fps, H.264), "
        f"{a.frames} uniformly sampled frames each; shapes agree: {same}"
    )
    for b, r in rows.items():
        print(f"  {b:<7} {r['videos_per_s']:8.1f} videos/s  {r['frames_per_s']:8.1f} sampled frames/s")
    print(f"decord / PyAV throughput: {ratio:.2f}x")
    save(
        "video_decode", dict(videos=a.videos, seconds_per_video=a.seconds, frames=a.frames, backends=rows, ratio=ratio)
    )


if __name__ == "__main__":
    main()
