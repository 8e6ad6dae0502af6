"""The deployment files in deploy/ (issue 14) cannot be started here (no Docker, no cluster): parse
them and check that what a classroom deployment depends on is set — replicas, cookie session
affinity, websocket-friendly timeouts, health checks, a non-root user."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tools import replicas

from .conftest import REPO

DEPLOY = REPO / "deploy"
HEALTH = "/_stcore/health"


def haproxy_sections(text: str) -> dict[str, list[str]]:
    """HAProxy config as {"<keyword> <name>": [directive lines]} (comments and blanks dropped)."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = line.strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line.strip())
    return sections


def seconds(value: str) -> float:
    """An HAProxy time ('90s', '2h', '500ms', '30m', bare number = ms) in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert m, value
    return int(m.group(1)) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1e-3}[m.group(2)]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def k8s() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s.yaml").read_text())}


def test_dockerfile_non_root_healthcheck_and_streamlit_command():
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.replace("\\\n", " ").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0].split()[:2] == ["FROM", "python:3.11-slim"]
    users = [ln.split()[1] for ln in lines if ln.split()[0] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    # Nothing runs as root after the last USER line.
    last_user = max(i for i, ln in enumerate(lines) if ln.split()[0] == "USER")
    assert not any(ln.split()[0] == "RUN" for ln in lines[last_user:])
    health = [ln for ln in lines if ln.split()[0] == "HEALTHCHECK"]
    assert len(health) == 1 and HEALTH in health[0] and "8501" in health[0]
    cmd = [ln for ln in lines if ln.split()[0] == "CMD"][-1]
    assert re.search(r'"streamlit",\s*"run",\s*"app.py"', cmd) and '"--server.address", "0.0.0.0"' in cmd
    # The image installs the torch series requirements.txt pins (a CPU wheel).
    pin = re.search(r"^torch(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert f'"torch{pin}"' in text


def test_compose_runs_replicas_behind_haproxy():
    services = compose()["services"]
    app, lb = services["app"], services["lb"]
    assert app["build"]["dockerfile"] == "deploy/Dockerfile"
    assert app["deploy"]["replicas"] >= 2
    assert "8501" in [str(p) for p in app["expose"]]
    assert "haproxy" in lb["image"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert lb["depends_on"]["app"]["condition"] == "service_healthy"
    # The corpora (Units view) are mounted read-only where the image looks for them.
    assert any(v.endswith(":/corpora:ro") for v in app["volumes"])
    assert "RNNVIZ_CORPORA=/corpora" in (DEPLOY / "Dockerfile").read_text()
    cfg = haproxy_sections((DEPLOY / "haproxy.cfg").read_text())
    binds = [d.split()[1] for d in cfg["frontend web"] if d.startswith("bind ")]
    assert any(p.split(":")[0] == b.rsplit(":", 1)[1] for b in binds for p in lb["ports"])
    # server-template offers at least as many slots as the compose file starts replicas.
    tmpl = [d.split() for d in cfg["backend rnnviz"] if d.startswith("server-template ")]
    assert tmpl and int(tmpl[0][2]) >= app["deploy"]["replicas"] and tmpl[0][3] == "app:8501"


def test_haproxy_affinity_websocket_and_health_checks():
    cfg = haproxy_sections((DEPLOY / "haproxy.cfg").read_text())
    defaults, backend = cfg["defaults"], cfg["backend rnnviz"]
    assert "mode http" in defaults        # HTTP mode: HAProxy upgrades websockets natively
    assert "default_backend rnnviz" in cfg["frontend web"]
    cookie = [d for d in backend if d.startswith("cookie ")]
    assert cookie and cookie[0].split()[1:3] == ["SERVERID", "insert"]
    assert "dynamic" in cookie[0].split() and any(d.startswith("dynamic-cookie-key ") for d in backend)
    tunnel = [d.split()[2] for d in defaults + backend if d.startswith("timeout tunnel ")]
    assert tunnel and seconds(tunnel[-1]) >= 3600      # an idle websocket survives a lecture
    # A busy laptop's browser may send its request a while after opening the connection: 10 s lost
    # first page loads in the 20-browser run (docs/RELIABILITY.md §7).
    request = [d.split()[2] for d in defaults if d.startswith("timeout http-request ")]
    assert request and seconds(request[-1]) >= 30
    assert "option httpchk" in backend
    assert any(d.startswith("http-check send") and f"uri {HEALTH}" in d for d in backend)
    assert all(" check" in d for d in backend if d.startswith(("server ", "server-template ")))


def test_haproxy_accepts_the_config():
    assert shutil.which("haproxy"), "Debian's haproxy is needed to check the config (bash .ci/run installs it)"
    run = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_k8s_deployment_probes_resources_and_sticky_ingress():
    docs = k8s()
    dep, svc, ing = docs["Deployment"], docs["Service"], docs["Ingress"]
    assert dep["spec"]["replicas"] >= 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (app,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"] == {"path": HEALTH, "port": 8501}, probe
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(app["resources"][kind]), kind
    mounts = {m["name"]: m for m in app["volumeMounts"]}
    assert mounts["corpora"]["mountPath"] == "/corpora" and mounts["corpora"]["readOnly"] is True
    assert "corpora" in {v["name"] for v in pod["volumes"]}
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["targetPort"] == 8501
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert ann["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    assert ann["nginx.ingress.kubernetes.io/session-cookie-name"]
    for t in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(ann[f"nginx.ingress.kubernetes.io/{t}"]) >= 3600, t
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == svc["metadata"]["name"]


def test_local_balancer_config_is_the_deploy_config(tmp_path):
    """tools/replicas.py runs deploy/haproxy.cfg itself: only addresses, socket and servers change."""
    template = (DEPLOY / "haproxy.cfg").read_text()
    local = replicas.haproxy_config(template, [("r1", 18501), ("r2", 18502)], 18080, 18404, tmp_path / "s.sock")
    got, want = haproxy_sections(local), haproxy_sections(template)
    assert not any(k.startswith("resolvers") for k in got)
    assert got["defaults"] == want["defaults"] and got["global"][:2] == want["global"][:2]
    servers = [d for d in got["backend rnnviz"] if d.startswith("server ")]
    assert servers == ["server r1 127.0.0.1:18501 check cookie r1", "server r2 127.0.0.1:18502 check cookie r2"]
    assert [d for d in got["backend rnnviz"] if not d.startswith("server ")] == \
        [d for d in want["backend rnnviz"] if not d.startswith("server-template ")]
    assert got["frontend web"][0] == "bind 127.0.0.1:18080"
    control = haproxy_sections(replicas.haproxy_config(template, [("r1", 1)], 2, 3, tmp_path / "s", affinity=False))
    assert not any(d.startswith("cookie ") for d in control["backend rnnviz"])
    if shutil.which("haproxy"):
        (tmp_path / "local.cfg").write_text(local)
        run = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "local.cfg")], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_balancer_log_counts_websockets_uploads_and_cookie_routing(tmp_path):
    log = tmp_path / "haproxy.log"
    log.write_text(
        '127.0.0.1:1 [02/Dec/2026:11:04:04.494] web rnnviz/r1 0/0/0/508/82204 101 191067 - - --NI 9/9/2/1/0 0/0 '
        '"GET /_stcore/stream HTTP/1.1"\n'
        '127.0.0.1:2 [02/Dec/2026:11:05:03.236] web rnnviz/r2 0/0/0/56/56 204 284 - - --VN 4/4/3/2/0 0/0 '
        '"PUT /_stcore/upload_file/84257bf7/4e6d4e2f HTTP/1.1"\n'
        '127.0.0.1:3 [02/Dec/2026:11:05:04.000] web rnnviz/r2 0/0/0/5/5 200 10 - - --DI 4/4/3/2/0 0/0 '
        '"GET /_stcore/health HTTP/1.1"\n')
    got = replicas.haproxy_log_summary(log)
    assert got["by_server"] == {"r1": {"requests": 1, "websockets": 1, "uploads": 0},
                                "r2": {"requests": 2, "websockets": 0, "uploads": 1}}
    assert got["cookie_flags"] == {"valid": 1, "none": 1, "other": 1}
