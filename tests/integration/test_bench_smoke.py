"""A smoke run of every benchmark with tiny sizes (hotconf only): the harness keeps working.
The real run, with the alternatives, is `make bench`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.servers


def test_bench_quick_smoke(tmp_path):
    out_file = tmp_path / "bench.json"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                          "--no-peers", "--out", str(out_file)],
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = json.loads(out_file.read_text())
    for name in ("read_cost", "propagation", "connections", "idle_memory", "scale",
                 "cold_start", "reload"):
        assert name in results
    assert all(r["long_polls"] == 1 for r in results["connections"].values())
    assert results["cold_start"]["refused"]["value"] == "warm"
    assert all(r["failed"] == 0 for r in results["reload"].values())
    assert "measure | who | figure" in out.stdout
