from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


def test_examples_quickstart_runs_against_the_gateway() -> None:
    run = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert re.search(r"integration calc-\w+: 6 tools", run.stdout), run.stdout
    assert re.search(r"selected calc-\w+\.add", run.stdout), run.stdout
    assert "= 42" in run.stdout
    assert re.search(r"typed error: 404 not_found \(request \S+\)", run.stdout), run.stdout
