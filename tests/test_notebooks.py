"Every notebook runs top to bottom (cells flagged slow/gpu skipped): the notebooks' asserts are tests."

import os, shutil, subprocess, sys
from pathlib import Path
import nbformat, pytest

NBDEV_TEST = shutil.which("nbdev_test", path=str(Path(sys.executable).parent)) or shutil.which("nbdev_test")

NBS = sorted(p.name for p in (Path(__file__).parent.parent / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NBS)
def test_notebook(nb):
    root = Path(__file__).parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    assert NBDEV_TEST, "nbdev_test not found: pip install -e '.[dev]'"
    r = subprocess.run(
        [NBDEV_TEST, "--path", f"nbs/{nb}"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_notebooks_found():
    assert "06_model.ipynb" in NBS and "index.ipynb" in NBS


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.mark.parametrize("nb", NBS)
def test_stored_outputs_are_clean(nb):
    "No stderr (warnings, progress bars) and no widget blobs in what a reader sees."
    cells = nbformat.read(Path(__file__).parent.parent / "nbs" / nb, as_version=4)
    assert [o.get("text", "")[:80] for o in _outputs(cells) if o.get("name") == "stderr"] == []
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in _outputs(cells))


@pytest.mark.parametrize("nb", [n for n in NBS if n != "index.ipynb"])
def test_every_notebook_ends_with_a_check(nb):
    last = nbformat.read(Path(__file__).parent.parent / "nbs" / nb, as_version=4).cells[-1]
    assert last.cell_type == "code" and any(k in last.source for k in ("assert", "test_")), last.source[-200:]
