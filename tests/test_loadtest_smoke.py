"""Smoke version of tools/loadtest.py (issue 7): 3 browser sessions × 20 s against a real server on
127.0.0.1, with uploads. The full run (20 sessions × 2 min) is in docs/RELIABILITY.md."""

from __future__ import annotations

import json
import subprocess
import sys

from . import hostile
from .conftest import REPO


def test_three_sessions_twenty_seconds(tmp_path):
    ckpts = hostile.write_tiny_checkpoints(tmp_path / "ckpts")
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(REPO / "tools" / "loadtest.py"), "--sessions", "3", "--duration", "20",
           "--ramp", "2", "--uploaders", "2", "--cache-texts", "60", "--cache-chars", "300", "--update-timeout", "300",
           "--checkpoint-dir", str(ckpts), "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert out.exists(), run.stderr[-3000:]
    r = json.loads(out.read_text())
    details = r["details"]
    assert r["server_alive"]
    assert r["text_updates"] >= 3 and r["view_switches"] >= 1, r
    assert r["exceptions"] == 0, details["exceptions"]
    assert r["page_errors"] == 0 and r["timeouts"] == 0, details
    assert r["token_leaks"] == 0 and r["upload_leaks"] == 0, details["leaks"]
    assert r["upload_failures"] == 0 and r["uploaders"] == 2, details["upload_failures"]
    assert 50 < r["rss_peak_mb"] < 4096
    assert r["cache_check"]["series"] and r["cache_check"]["final_mb"] > 0
    assert all(c["max_entries"] for c in r["cache_bounds"]), r["cache_bounds"]
    assert run.returncode == 0, run.stdout[-2000:]
