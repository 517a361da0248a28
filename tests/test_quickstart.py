"The quickstart command, shortened (`--smoke`): every step runs, the table prints, a second run reuses the steps."
import json, shutil, subprocess
import pytest

EXE = shutil.which("lynx-lite")


@pytest.mark.skipif(EXE is None, reason="lynx-lite is not installed")
def test_quickstart_smoke(tmp_path):
    r = subprocess.run([EXE, "quickstart", "--smoke", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for task in ("color", "shape", "count", "position", "motion"): assert task in r.stdout
    assert "MME-style score" in r.stdout
    s = json.loads((tmp_path / "quickstart.json").read_text())
    assert set(s["chance"]) == {"color", "shape", "count", "position", "size", "motion"}
    again = subprocess.run([EXE, "quickstart", "--smoke", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("reusing") == 5
