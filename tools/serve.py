"""Start the Streamlit app as a subprocess on a free loopback port (tests, benchmarks, load test).

No Streamlit import: the app runs in its own process, started with ``python -m streamlit run``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Debian's Chromium and the flags it needs here (headless, as root, no network chatter).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """Terminate ``proc``; kill it if it has not exited after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()

def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``url``/_stcore/health until it answers 200 (True), ``timeout`` seconds pass or ``proc``
    exits (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False

class AppServer:
    """``streamlit run <script>`` on 127.0.0.1 at a free port, ready (health check) on return.

    env: extra environment variables; log: a file object for the server's output (None: discard);
    args: the script's own arguments (after ``--``, e.g. ``("--no-warmup",)``). Call :meth:`stop`
    when done.
    """

    def __init__(self, script: Path | str = REPO / "app.py", env: dict | None = None,
                 log=None, timeout: float = 90.0, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "streamlit", "run", str(script),
               "--server.headless=true", "--server.address=127.0.0.1", f"--server.port={self.port}",
               "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
        if args:
            cmd += ["--", *args]
        out = log if log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                                     stdout=out, stderr=subprocess.STDOUT)
        if wait_healthy(self.url, timeout, self.proc):
            return
        self.stop()
        raise RuntimeError(f"streamlit did not start within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)
