"""The load test's browserless client (tools/st_protocol.py, tools/load_protocol.py, issue 14):
Streamlit's websocket protocol against a real server, and the checks it makes on every update."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
from types import SimpleNamespace

from streamlit.proto.BidiComponent_pb2 import BidiComponent
from streamlit.proto.Markdown_pb2 import Markdown

from app_pages.ui.text import MAX_PAGE_CHARS
from tools.load_protocol import ProtocolRun
from tools.load_session import Stats, digest, token_for
from tools.serve import AppServer
from tools.st_protocol import FINISHED_OK, ProtocolSession, Run

from . import hostile
from .conftest import REPO


def run_in_own_loop(coro):
    """``asyncio.run`` in a thread of its own: an earlier test in the same process (Playwright's
    sync API) may have left an event loop set on this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_a_session_drives_the_app_like_a_browser(tmp_path):
    """A text commit and a view switch, as the browser asks for them: the new text's charts come
    back (their digest), the other view's title, and the server's own URL state stays consistent."""
    ckpts = hostile.write_tiny_checkpoints(tmp_path / "ckpts")
    server = AppServer(REPO / "app.py", {"RNNVIZ_CHECKPOINT_DIR": str(ckpts)})

    async def drive():
        s = ProtocolSession(server.url, timeout=120)
        await s.connect()
        try:
            first = await s.run(query="ckpt=timemachine-gru&text=hello")
            area = first.widget_id("text_area")
            text = "the time machine by h. g. wells"
            commit = await s.run(widgets={area: text})
            view = await s.run(page="gradients")
            return first, commit, view, set(s.pages)
        finally:
            await s.close()

    try:
        first, commit, view, pages = run_in_own_loop(drive())
    finally:
        server.stop()
    for run in (first, commit, view):
        assert run.status == FINISHED_OK and not run.exceptions, run.exceptions
        assert run.seconds > 0
    assert first.widget_id("text_area") is not None
    assert {"predictions", "gradients", "train"} <= pages
    mark = digest("timemachine-gru", "the time machine by h. g. wells", MAX_PAGE_CHARS).encode()
    old = digest("timemachine-gru", "hello", MAX_PAGE_CHARS).encode()
    charts = [p for p in commit.payloads() if b'"rnnviz"' in p]
    assert charts and all(mark in p and old not in p for p in charts)
    titles = [el.body for kind, el in view.elements if kind == "heading"]
    assert any(t.startswith("Gradients") for t in titles), titles


def _run(*elements) -> Run:
    return Run(elements=list(elements), status=FINISHED_OK, seconds=0.1)


def test_the_checks_catch_a_stale_chart_and_another_sessions_token():
    tokens = [token_for(i) for i in range(3)]
    stats = Stats()
    args = SimpleNamespace(cookie=None, update_timeout=10)
    run = ProtocolRun(1, "http://127.0.0.1:1", "timemachine-gru", tokens, [], args, stats, MAX_PAGE_CHARS)
    run.text = f"some text {tokens[1]}"
    own = digest("timemachine-gru", run.text, MAX_PAGE_CHARS)
    chart = BidiComponent(id="c", component_name="x", bytes=f'{{"layout": {{"meta": {{"rnnviz": "{own}"}}}}}}'.encode())
    run.check(_run(("bidi_component", chart), ("markdown", Markdown(body=run.text))), "clean")
    assert not (stats.timeouts or stats.leaks or stats.exceptions)

    stale = BidiComponent(id="c", component_name="x", bytes=b'{"layout": {"meta": {"rnnviz": "0123"}}}')
    run.check(_run(("bidi_component", stale)), "stale")
    assert len(stats.stale_charts) == 1 and "not of this session's text" in stats.stale_charts[0]
    assert not stats.timeouts
    run.check(_run(("markdown", Markdown(body=f"text of {tokens[2]}"))), "leak")
    assert stats.leaks == ["session 1 saw token of session 2 (leak)"]
    failed = Run(elements=[], status=None, exceptions=["ValueError: boom"])
    run.check(failed, "failed")
    assert stats.exceptions == ["session 1 failed: ValueError: boom"] and len(stats.timeouts) == 1


def test_loadtest_with_the_protocol_client(tmp_path):
    """tools/loadtest.py --client protocol: 2 sessions × 10 s, every update one script run."""
    ckpts = hostile.write_tiny_checkpoints(tmp_path / "ckpts")
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(REPO / "tools" / "loadtest.py"), "--client", "protocol",
           "--sessions", "2", "--duration", "10", "--ramp", "1", "--think", "0.2", "0.5",
           "--cache-texts", "0", "--checkpoint-dir", str(ckpts), "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.exists(), run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["client"] == "protocol" and r["uploaders"] == 0
    assert r["text_updates"] >= 2 and r["view_switches"] >= 1, r
    assert r["exceptions"] == r["timeouts"] == r["token_leaks"] == 0, r["details"]
    assert sum(r["runs_by_view"].values()) == r["actions"] > 0     # every update one finished run
    assert 0 < r["text_p50_s"] <= r["text_max_s"]
    # No browser among the processes the load test started (the machine may run others' browsers).
    assert r["own_programs"] and "chromium" not in " ".join(r["own_programs"]).lower(), r["own_programs"]
    assert run.returncode == 0, run.stdout[-2000:]


def test_next_round_skips_a_round_missed_while_waiting():
    """--burst rounds start every PERIOD s from the load's start: the next round after the one a
    session acted in, or (its update outlasted that round's start) the first one still ahead."""
    from tools.load_session import next_round_at

    assert next_round_at(100.0, 30.0, acted_at=101.5, now=104.0) == 130.0     # acted in round 0
    assert next_round_at(100.0, 30.0, acted_at=131.0, now=133.0) == 160.0     # round 1 -> round 2
    assert next_round_at(100.0, 30.0, acted_at=101.5, now=135.0) == 160.0     # round 1 missed
    assert next_round_at(100.0, 30.0, acted_at=100.0, now=100.2) == 130.0     # at the very start


def test_loadtest_stay_keeps_every_session_on_one_view(tmp_path):
    """--stay gradients: only text commits, all on Gradients (its charts checked each time), here in
    --burst rounds: every action starts within SPREAD s of a round's start, once per session per
    round; --stay is refused with the browser client and for a view the app does not have."""
    ckpts = hostile.write_tiny_checkpoints(tmp_path / "ckpts")
    out = tmp_path / "load.json"
    base = [sys.executable, str(REPO / "tools" / "loadtest.py"), "--cache-texts", "0",
            "--checkpoint-dir", str(ckpts)]
    cmd = base + ["--client", "protocol", "--stay", "gradients", "--sessions", "2", "--duration", "9",
                  "--ramp", "1", "--burst", "3", "0.5", "--text-chars", "300", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.exists(), run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["stay"] == "gradients" and r["text_chars"] == 300
    assert r["view_switches"] == 0 and r["text_updates"] >= 2, r
    assert r["exceptions"] == r["timeouts"] == r["token_leaks"] == 0, r["details"]
    assert set(r["runs_by_view"]) == {"gradients"}, r["runs_by_view"]
    assert r["burst_s"] == [3.0, 0.5]
    rounds = [(int(start // 3), sid) for start, sid, _, _ in r["updates"]]
    assert all(start % 3 < 0.5 + 0.15 for start, *_ in r["updates"]), r["updates"]
    assert len(rounds) == len(set(rounds)) and len({k for k, _ in rounds}) >= 2, r["updates"]
    assert run.returncode == 0
    refused = subprocess.run(base + ["--stay", "gradients", "--sessions", "1"], capture_output=True,
                             text=True, timeout=60, cwd=REPO)
    assert refused.returncode == 2 and "--stay needs --client protocol" in refused.stderr
    unknown = subprocess.run(base + ["--client", "protocol", "--stay", "nowhere", "--sessions", "1"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert unknown.returncode == 2 and "no view 'nowhere'" in unknown.stderr


def test_sampler_reads_back_the_cpu_of_a_window():
    """The replicas run's per-replica CPU over the load period comes from this window reading: it
    must match what another process says it used in that window (its own CPU clock)."""
    from tools.procstats import RssSampler

    child = subprocess.Popen([sys.executable, "-c", """if True:
        import time
        time.sleep(0.3)
        start, c0 = time.time(), time.process_time()
        while time.process_time() - c0 < 0.8:
            pass                                  # burn 0.8 s of CPU
        print(start, time.time(), time.process_time() - c0, flush=True)
        time.sleep(0.5)"""], stdout=subprocess.PIPE, text=True)
    sampler = RssSampler(child.pid, every=0.05)
    sampler.start()
    start, end, used = map(float, child.stdout.readline().split())
    child.wait(30)
    sampler.stop()
    assert abs(sampler.cpu_between(start, end) - used) < 0.2
    assert sampler.cpu_between(end + 5, end + 6) is None


def test_niced_browsers_run_low_in_their_own_session():
    """--browser-nice: Playwright starts the browser in a session of its own, which the kernel's
    autogroup scheduling treats as a group with a fair share of the CPUs whatever its nice; the
    launcher lowers both the process's nice and (where the kernel has autogroups) its group's."""
    import ast

    from tools.load_session import niced

    probe = """if True:
        import os
        group = open("/proc/self/autogroup").read() if os.path.exists("/proc/self/autogroup") else ""
        print(os.getpriority(os.PRIO_PROCESS, 0), os.getsid(0) == os.getpid(), repr(group))"""
    out = subprocess.run([niced(sys.executable, 19), "-c", probe], capture_output=True, text=True,
                         timeout=60, start_new_session=True).stdout.split(" ", 2)
    assert out[0] == "19" and out[1] == "True", out
    group = ast.literal_eval(out[2])
    assert group == "" or group.rstrip().endswith("nice 19"), group
