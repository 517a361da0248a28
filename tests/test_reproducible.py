"Same seed, same weights: the quickstart's stage 1 (videos included) run alone and beside a CPU-heavy process."

import subprocess, sys
from dataclasses import replace
from safetensors.torch import load_file
from lynx_lite.lab.quickstart import SMOKE, pretrain_standins, train_stages
from lynx_lite.train import weights_digest

HOG = "import torch\na = torch.randn(700, 700)\nwhile True:\n    a = (a @ a).tanh()"  # two busy threads


def test_quickstart_stage1_is_bit_identical_beside_a_busy_process(tmp_path):
    qc = replace(SMOKE, out=str(tmp_path / "qs"), stage1_steps=12, stage2_steps=1)
    standins = pretrain_standins(qc, progress=False)
    captions = (standins["data"] / "captions.jsonl").read_text()
    assert '"video"' in captions  # stage 1 trains on video-caption pairs too
    digests = {}
    for run in ("alone", "beside a busy process", "alone again"):
        hog = subprocess.Popen([sys.executable, "-c", HOG]) if run.startswith("beside") else None
        try:
            train_stages(qc, standins, tmp_path / run, progress=False)
        finally:
            if hog:
                hog.kill()
                hog.wait()
        weights = load_file(str(tmp_path / run / "stage1" / "model" / "model.safetensors"))
        digests[run] = weights_digest(weights)
    assert len(set(digests.values())) == 1, digests


def test_the_world_is_written_byte_for_byte_again(tmp_path):
    "Its videos included: x264's lossy mode gave 2-5 of 60 clips other bytes and other frames from run to run."
    import hashlib
    from lynx_lite.lab.shapes import write_dataset

    def files(folder):
        write_dataset(folder, n_images=4, n_videos=60, seed=5, progress=False)
        media = sorted(p for p in folder.rglob("*") if p.suffix in (".mp4", ".png", ".jsonl"))
        return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in media}

    first, second = files(tmp_path / "a"), files(tmp_path / "b")
    assert sum(k.endswith(".mp4") for k in first) == 60
    assert first == second, [k for k in first if first[k] != second.get(k)][:5]
