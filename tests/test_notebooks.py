"Every notebook runs top to bottom (cells flagged slow/gpu skipped): the notebooks' asserts are tests."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

NBDEV_TEST = shutil.which("nbdev_test", path=str(Path(sys.executable).parent)) or shutil.which("nbdev_test")

NBS = sorted(p.name for p in (Path(__file__).parent.parent / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NBS)
def test_notebook(nb):
    root = Path(__file__).parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    assert NBDEV_TEST, "nbdev_test not found: pip install -e '.[dev]'"
    r = subprocess.run([NBDEV_TEST, "--path", f"nbs/{nb}"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_notebooks_found():
    assert "06_model.ipynb" in NBS and "index.ipynb" in NBS
