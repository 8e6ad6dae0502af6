#!/usr/bin/env python
"""K app replicas behind HAProxy on 127.0.0.1, load-tested through the balancer (issue 14).

    python tools/replicas.py --replicas 1 2 -- --sessions 20 --duration 120 --think 15 30 \\
        --browser-nice 19 --cache-texts 0
    python tools/replicas.py --replicas 1 2 -- --sessions 3 --duration 20 --cache-texts 0   # brief

For each K in ``--replicas`` (one after the other, each from a cold start):

1. starts K ``streamlit run app.py`` processes on free 127.0.0.1 ports;
2. writes an HAProxy config from ``deploy/haproxy.cfg`` itself (the file docker-compose uses): only
   the listening addresses, the stats socket and the backend's server lines are replaced, and the
   Docker-only DNS section is dropped, so the local run and the deployment share one config;
3. starts Debian's ``haproxy`` in front (``apt-get install -y haproxy`` if it is missing);
4. runs the load script (``loadtest.py --url <balancer> --cookie SERVERID``, every argument after
   ``--`` passed on) through the balancer while sampling every replica's RSS;
5. reports per K: updates per second held, replica CPU-s per update, end-to-end p50/p95,
   errors, leaks, per-replica RSS peak/end and CPU-s, and **stickiness**: the SERVERID values each
   browser session held (one each means it never moved), HAProxy's per-replica session counts (its
   stats socket), and the uploads (an upload is a separate HTTP request that must reach the replica
   holding the session: the load script checks each uploader finds its checkpoint on later reruns).

``--no-affinity`` drops the cookie line: a control run that shows what stickiness is for.
``--replica-cpus 0`` runs every replica on core 0 and the balancer and load clients on the other
cores: a replica of the sizing rule's one core, its clients elsewhere.
Prints a JSON summary (``--json PATH`` writes it too); exit status 1 if any K had errors or leaks.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))          # run as a script, too
from tools.load_report import server_errors  # noqa: E402
from tools.procstats import RssSampler, cpu_seconds, pin_tree  # noqa: E402
from tools.serve import AppServer, stop_process, wait_healthy  # noqa: E402

HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
COOKIE = "SERVERID"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOAD_SCRIPT = REPO / "tools" / "loadtest.py"


def haproxy_config(template: str, servers: list[tuple[str, int]], bind_port: int, stats_port: int,
                   stats_socket: Path, affinity: bool = True) -> str:
    """``deploy/haproxy.cfg`` made local: listen on 127.0.0.1, the given ``(name, port)`` servers in
    place of the Docker ``server-template``, the stats socket at ``stats_socket``, no DNS section.
    Every other line (balancing, cookie affinity, timeouts, health checks) is the template's."""
    out, skip = [], False
    for line in template.splitlines():
        if line.startswith("# @docker-only"):
            skip = True                       # drop the marked section up to the next blank line
            continue
        if skip:
            skip = bool(line.strip())
            continue
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == "bind :8080":
            line = f"{indent}bind 127.0.0.1:{bind_port}"
        elif stripped == "bind :8404":
            line = f"{indent}bind 127.0.0.1:{stats_port}"
        elif stripped.startswith("stats socket "):
            line = f"{indent}stats socket {stats_socket} mode 600 level user"
        elif stripped.startswith("server-template "):
            out += [f"{indent}server {name} 127.0.0.1:{port} check cookie {name}" for name, port in servers]
            continue
        elif not affinity and stripped.startswith(("cookie ", "dynamic-cookie-key ")):
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    for needed in (f"bind 127.0.0.1:{bind_port}", f"stats socket {stats_socket}", "server "):
        if needed not in text:
            raise ValueError(f"deploy/haproxy.cfg changed shape: {needed!r} could not be placed")
    return text


def haproxy_stats(sock: Path) -> list[dict]:
    """``show stat`` from HAProxy's stats socket, one dict per proxy/server row."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().lstrip("# ").splitlines()
    return list(csv.DictReader(line for line in lines if line.strip()))


#: One line of HAProxy's httplog: backend/server, timers, status, ..., termination and cookie flags,
#: ..., the request line.
LOG_LINE = re.compile(r' (?P<backend>[\w-]+)/(?P<server>\S+) \S+ (?P<status>-?\d+) \+?\d+ \S+ \S+ '
                      r'(?P<flags>\S{4}) .* "(?P<method>\S+) (?P<path>\S+)')


def haproxy_log_summary(log: Path) -> dict:
    """Per replica: requests, websockets (101 on /_stcore/stream = one browser session each) and
    uploads; and the affinity cookie's fate on every request (HAProxy's 3rd cookie flag: V = a
    valid cookie routed it to its replica, N = no cookie yet; anything else means a request could
    not go where its cookie said: D replica down, I invalid, E/O expired; '-' with --no-affinity)."""
    by_server: dict[str, dict[str, int]] = {}
    flags = {"valid": 0, "none": 0, "other": 0}
    for line in log.read_text(errors="replace").splitlines():
        m = LOG_LINE.search(line)
        if not m or m["backend"] != "rnnviz":
            continue
        row = by_server.setdefault(m["server"], {"requests": 0, "websockets": 0, "uploads": 0})
        row["requests"] += 1
        row["websockets"] += m["status"] == "101" and m["path"].startswith("/_stcore/stream")
        row["uploads"] += m["method"] == "PUT" and m["path"].startswith("/_stcore/upload_file/")
        flags[{"V": "valid", "N": "none"}.get(m["flags"][2], "other")] += 1
    return {"by_server": by_server, "cookie_flags": flags}


class Balancer:
    """Debian's haproxy in the foreground (``-db``) with a config written for this run."""

    def __init__(self, cfg_text: str, workdir: Path, port: int, sock: Path):
        self.url, self.sock = f"http://127.0.0.1:{port}", sock
        cfg = workdir / "haproxy.cfg"
        cfg.write_text(cfg_text)
        check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError("haproxy refused the config:\n" + check.stdout + check.stderr)
        self.log = open(workdir / "haproxy.log", "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait_healthy(self.url, 60):     # ready when a health-checked replica answers through it
            return
        self.stop()
        raise RuntimeError("haproxy did not pass requests to a replica within 60 s")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def start_replicas(k: int, workdir: Path, checkpoint_dir: Path | None) -> list:
    """K app processes (tools.serve.AppServer, each with its output in a log file), started
    concurrently."""
    def one(i: int):
        env = {}
        if checkpoint_dir:
            env["RNNVIZ_CHECKPOINT_DIR"] = str(checkpoint_dir)
        log = open(workdir / f"replica-r{i}.log", "wb")
        server = AppServer(REPO / "app.py", env, log=log, timeout=180)
        server.log, server.name = log, f"r{i}"
        return server
    with concurrent.futures.ThreadPoolExecutor(k) as pool:
        return list(pool.map(one, range(1, k + 1)))


def run_load(url: str, workdir: Path, checkpoint_dir: Path | None, load_args: list[str]) -> dict:
    """The load script against ``url``; its JSON summary."""
    out = workdir / "load.json"
    cmd = [sys.executable, str(LOAD_SCRIPT), "--url", url, "--cookie", COOKIE, "--json", str(out)]
    if checkpoint_dir:
        cmd += ["--checkpoint-dir", str(checkpoint_dir)]
    subprocess.run(cmd + load_args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(workdir / "load.err", "wb"))
    if not out.exists():
        raise RuntimeError("the load script wrote no summary: see " + str(workdir / "load.err"))
    return json.loads(out.read_text())


def measure(k: int, args, load_args: list[str]) -> dict:
    """Replicas, balancer and load for one K; the summary of that run."""
    workdir = Path(tempfile.mkdtemp(prefix=f"rnnviz-replicas-k{k}-"))
    every_cpu = os.sched_getaffinity(0)
    replicas = start_replicas(k, workdir, args.checkpoint_dir)
    balancer = samplers = None
    try:
        if args.replica_cpus:
            pin_cpus(replicas, set(args.replica_cpus), every_cpu)
        port, stats_port, sock = free_port(), free_port(), workdir / "haproxy.sock"
        cfg = haproxy_config(HAPROXY_CFG.read_text(), [(r.name, r.port) for r in replicas], port,
                             stats_port, sock, affinity=args.affinity)
        balancer = Balancer(cfg, workdir, port, sock)
        samplers = [RssSampler(r.proc.pid) for r in replicas]
        for s in samplers:
            s.start()
        cpu0 = [cpu_seconds(r.proc.pid) for r in replicas]
        load = run_load(balancer.url, workdir, args.checkpoint_dir, load_args)
        cpu = [round(cpu_seconds(r.proc.pid) - c, 1) for r, c in zip(replicas, cpu0)]
        rows = {row["svname"]: row for row in haproxy_stats(sock) if row["pxname"] == "rnnviz"}
        time.sleep(0.5)         # closed websockets are logged when they end
        alive = [r.alive() for r in replicas]
    finally:
        os.sched_setaffinity(0, every_cpu)
        for s in samplers or []:
            s.stop()
        if balancer:
            balancer.stop()
        for r in replicas:
            r.stop()
            r.log.close()
    logged = haproxy_log_summary(workdir / "haproxy.log")
    per_replica = [{"name": r.name, "rss_peak_mb": round(s.peak()[0], 1), "rss_end_mb": round(s.last(), 1),
                    "cpu_s": c, "load_period_cpu_s": period_cpu(s, load), "alive": a, "haproxy_status": rows.get(r.name, {}).get("status"),
                    "haproxy_requests": int(rows.get(r.name, {}).get("stot") or 0),
                    **logged["by_server"].get(r.name, {"websockets": 0, "uploads": 0}),
                    "server_errors": server_errors(workdir / f"replica-{r.name}.log")}
                   for r, s, c, a in zip(replicas, samplers, cpu, alive)]
    return summarize(k, load, per_replica, logged["cookie_flags"], workdir)


def pin_cpus(replicas: list, cpus: set[int], every_cpu: set[int]) -> None:
    """``--replica-cpus``: every thread of every replica on ``cpus``; this driver, and so the
    balancer and the load script it starts next, on the other CPUs (all of them if none is left).
    Threads a replica starts later inherit its CPUs."""
    for r in replicas:
        pin_tree(r.proc.pid, cpus)
    os.sched_setaffinity(0, (every_cpu - cpus) or every_cpu)


def period_cpu(sampler: RssSampler, load: dict) -> float | None:
    """A replica's CPU seconds over the load period alone (every session connected, first page
    loads and start-up warm-up mostly behind), from the sampler's CPU series."""
    window = load.get("load_period_unix")
    cpu = sampler.cpu_between(*window) if window else None
    return None if cpu is None else round(cpu, 1)


def steady_cpu_per_update(per_replica: list[dict], updates: int) -> float | None:
    """All replicas' CPU over the load period per timed update (None if a replica has no figure)."""
    cpus = [r["load_period_cpu_s"] for r in per_replica]
    return None if None in cpus else round(sum(cpus) / max(1, updates), 3)


def summarize(k: int, load: dict, per_replica: list[dict], cookie_flags: dict, workdir: Path) -> dict:
    """The figures issue 14 asks for, from the load summary and the per-replica measurements.
    ``replica_cpu_s_per_update``: all replicas' CPU while the load script ran (sessions' first page
    loads and uploads included) over the updates it timed."""
    cookies = load.get("cookie_values_per_session", {})
    updates = load["text_updates"] + load["view_switches"]
    errors = (load["exceptions"] + load["page_errors"] + load["timeouts"] + load["stale_charts"]
              + load["upload_failures"]
              + sum(not r["alive"] for r in per_replica))
    return {
        "replicas": k, "workdir": str(workdir), "sessions": load["sessions"],
        "load_period_s": load["load_period_s"], "updates": updates,
        "updates_per_s": round(updates / max(1e-9, load["load_period_s"]), 3),
        "text_p50_s": load["text_p50_s"], "text_p95_s": load["text_p95_s"],
        "view_p50_s": load["view_p50_s"], "view_p95_s": load["view_p95_s"], "all_p95_s": load["all_p95_s"],
        "errors": errors, "console_errors": load["console_errors"],
        "leaks": load["token_leaks"] + load["upload_leaks"],
        "uploaders": load["uploaders"], "upload_failures": load["upload_failures"],
        "replica_cpu_s_per_update": round(sum(r["cpu_s"] for r in per_replica) / max(1, updates), 3),
        "load_period_cpu_s_per_update": steady_cpu_per_update(per_replica, updates),
        "per_replica": per_replica,
        "stickiness": {
            "sessions_with_cookie": len(cookies),
            "sessions_with_one_value": sum(len(v) == 1 for v in cookies.values()),
            "distinct_values": sorted({v for vs in cookies.values() for v in vs}),
            "requests_by_cookie": cookie_flags,
        },
        "cpu_by_program_s": load.get("cpu_by_program_s"), "details": load["details"],
        "browser_nice": load.get("browser_nice"), "think_s": load.get("think_s"),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    load_args = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Arguments after -- go to the load script (loadtest.py --help).")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2], metavar="K",
                    help="replica counts to measure, one after the other (default: 1 2)")
    ap.add_argument("--checkpoint-dir", type=Path, default=None, help="default: the shipped checkpoints/")
    ap.add_argument("--affinity", action=argparse.BooleanOptionalAction, default=True,
                    help="cookie session affinity (default); --no-affinity: a control run without it")
    ap.add_argument("--replica-cpus", type=int, nargs="+", default=None, metavar="CPU",
                    help="run the replicas on these CPUs only, the balancer and load clients on the "
                         "others (e.g. 0: one-core replicas)")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if shutil.which("haproxy") is None:
        print("haproxy is not installed: on Debian run `apt-get install -y haproxy` (as root).", file=sys.stderr)
        return 2
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    runs = [measure(k, args, load_args) for k in args.replicas]
    summary = {"command": "python tools/replicas.py " + " ".join(argv), "started": started,
               "host": os.uname().nodename, "cpus": os.cpu_count(), "affinity": args.affinity,
               "replica_cpus": args.replica_cpus, "runs": runs}
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 1 if any(r["errors"] or r["leaks"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
