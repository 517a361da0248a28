"The lab's one cache: a step is reused only when every input that changes its output is the same."

import json
from dataclasses import replace
from PIL import Image
import pytest
from lynx_lite.lab import quickstart as qs
from lynx_lite.lab.ablate import run_variant
from lynx_lite.lab.shapes import prepare_world


def test_a_world_of_another_image_size_is_written_again(tmp_path):
    prepare_world(tmp_path / "w", 2, 0, size=32, progress=False)
    prepare_world(tmp_path / "w", 2, 0, size=48, progress=False)
    assert Image.open(tmp_path / "w/images/000000.png").size == (48, 48)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    cfg = replace(qs.SMOKE, out=str(tmp_path_factory.mktemp("qs")))
    return cfg, qs.pretrain_standins(cfg, progress=False)


def test_an_ablation_run_with_other_step_counts_is_trained_again(tmp_path, smoke):
    cfg, standins = smoke
    first = run_variant({}, 0, cfg, standins, tmp_path, 2, 2, 4, progress=False)
    again = run_variant({}, 0, cfg, standins, tmp_path, 2, 2, 4, progress=False)
    assert again == first  # the same settings: reused
    run_variant({}, 0, cfg, standins, tmp_path, 2, 3, 4, progress=False)
    summary = json.loads((tmp_path / "runs/base-seed0/stage2/summary.json").read_text())
    assert summary["steps"] == 3
    record = json.loads((tmp_path / "runs/base-seed0/done.json").read_text())
    assert record["settings"]["stage2_steps"] == 3


def test_the_quickstart_evaluation_runs_once(tmp_path, monkeypatch):
    cfg = replace(qs.SMOKE, out=str(tmp_path))
    first = qs.quickstart(cfg, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the held-out evaluation ran again")

    monkeypatch.setattr(qs, "heldout_accuracy", fail)
    monkeypatch.setattr(qs, "evaluate", fail)
    assert qs.quickstart(cfg, progress=False)["accuracy"] == first["accuracy"]
