"""User regex workers are bounded server-wide and failures are remembered (issue 27, finding 5).

- Eight sessions' patterns at once start at most REGEX_WORKERS processes together; the others wait
  their turn, and ``regex_run.queue()`` reports how many run and wait (the page shows it).
- A pattern that timed out on a text fails again at once on the same text, without a process.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from rnnviz import features as F
from rnnviz import regex_run


@pytest.fixture
def counted(monkeypatch):
    """subprocess.run as the matcher sees it, counting calls and the most running at once; the
    child is replaced by a 0.2 s sleep returning no match (no CPU spent)."""
    stats = {"calls": 0, "now": 0, "most": 0, "waiting": 0}
    lock = threading.Lock()

    def fake_run(args, **kw):
        with lock:
            stats["calls"] += 1
            stats["now"] += 1
            stats["most"] = max(stats["most"], stats["now"])
        time.sleep(0.2)
        stats["waiting"] = max(stats["waiting"], regex_run.queue()[1])
        with lock:
            stats["now"] -= 1
        return subprocess.CompletedProcess(args, 0, stdout="[]", stderr="")

    monkeypatch.setattr(regex_run.subprocess, "run", fake_run)
    return stats


def test_at_most_regex_workers_run_at_once(counted):
    threads = [threading.Thread(target=F.regex_spans, args=(f"x{i}", "some text")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted["calls"] == 8
    assert counted["most"] <= regex_run.REGEX_WORKERS
    assert counted["waiting"] >= 1                       # the queue was visible while they waited
    assert regex_run.queue() == (0, 0)


def test_a_failed_pattern_is_not_run_again_on_the_same_text(monkeypatch):
    calls = []
    real = subprocess.run

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(regex_run.subprocess, "run", spy)
    text = "a" * 40 + "!"
    with pytest.raises(F.FeatureError, match="took longer"):
        F.regex_spans("(a+)+$", text, timeout_s=0.3)
    t0 = time.perf_counter()
    with pytest.raises(F.FeatureError, match="already failed on this text"):
        F.regex_spans("(a+)+$", text, timeout_s=0.3)
    assert time.perf_counter() - t0 < 0.1 and len(calls) == 1
    assert F.regex_spans("(a+)+$", "aaa") == [(0, 3)]    # another text: run normally
