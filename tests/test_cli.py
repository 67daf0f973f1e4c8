"""Every command's --help works offline, from any working directory, and exits 0."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p for folder in ("train", "eval") for p in (ROOT / folder).glob("*.py")
    if p.name not in ("__init__.py", "metrics.py")
) + [ROOT / "app.py"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help_works_offline(script, tmp_path):
    if not script.exists():
        pytest.skip(f"{script.name} not present")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()
