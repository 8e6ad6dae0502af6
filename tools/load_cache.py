"""The load test's cache check (used by tools/loadtest.py).

``CACHE_SCRIPT`` runs in a fresh interpreter: it traces N distinct texts through the app's own
cached function (``app_pages.ui.cache.cached_trace``, the same byte-bounded store as the server)
and reports its RSS every 50 texts; ``cache_check`` runs it. ``cache_bounds`` lists every
``st.cache_data``/``st.cache_resource`` in app_pages/ with its ``max_entries``/``ttl``, and every
byte-bounded store (``rnnviz.serving.cache.ByteLRU``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tools.load_session import WORDS
from tools.serve import REPO

CACHE_SCRIPT = r"""
import json, os, random, sys, time
P = json.loads(sys.argv[1])
sys.path.insert(0, P["repo"])
import streamlit as st
from app_pages.ui import cache

def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
words, N, LENGTH = P["words"], P["n"], P["length"]
rng = random.Random(0)
key = P["model"]
model = cache.shipped_model(key)
ref = cache.get_ref(key, model)
base = rss()
series = []
for i in range(N):
    body = " ".join(rng.choice(words) for _ in range(LENGTH // 4))
    text = (f"{i} " + body)[:LENGTH]
    cache.cached_trace(ref, model, text)
    if (i + 1) % 50 == 0:
        series.append([i + 1, round(rss(), 1)])
print(json.dumps({"base_mb": round(base, 1), "series": series, "final_mb": round(rss(), 1)}))
"""


def _bound(where: str, kind: str, args: str) -> dict:
    me = re.search(r"max_entries\s*=\s*([\w.]+)", args)
    ttl = re.search(r"ttl\s*=\s*([\w.\"']+)", args)
    return {"where": where, "kind": kind, "max_entries": me.group(1) if me else None,
            "ttl": ttl.group(1) if ttl else None}


def cache_bounds() -> list[dict]:
    """Every st.cache_data / st.cache_resource in app_pages/ with its max_entries and ttl, and every
    byte-bounded store (rnnviz.serving.cache.ByteLRU) in app_pages/ (held by a cache_resource) or rnnviz/."""
    decorated = re.compile(r"@st\.(cache_data|cache_resource)(\((?P<args>[^)]*)\))?\s*\n\s*def (?P<fn>\w+)")
    held = re.compile(r"def (?P<fn>\w+)\(\) -> ByteLRU:.*?return ByteLRU\((?P<args>[^)]*)\)", re.S)
    module_level = re.compile(r"^(?P<fn>\w+) = ByteLRU\((?P<args>[^)]*)\)", re.M)
    out = []
    for folder, patterns in (("app_pages", (decorated, held)), ("rnnviz", (module_level,))):
        for pat in patterns:
            for path in sorted((REPO / folder).glob("*.py")):
                for m in pat.finditer(path.read_text(encoding="utf-8")):
                    args = m.group("args") or ""
                    kind = m.group(1) if pat is decorated else f"ByteLRU({args.split(',')[0].strip()} bytes)"
                    out.append(_bound(f"{path.relative_to(REPO)}:{m.group('fn')}", kind, args))
    return out


def cache_check(n: int, length: int, model_key: str, checkpoint_dir: Path | None) -> dict:
    env = dict(os.environ)
    if checkpoint_dir:
        env["RNNVIZ_CHECKPOINT_DIR"] = str(checkpoint_dir)
    params = {"repo": str(REPO), "words": WORDS, "n": n, "length": length, "model": model_key}
    out = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, json.dumps(params)], capture_output=True,
                         text=True, env=env, timeout=1800, cwd=REPO)
    if out.returncode != 0:
        return {"error": out.stderr[-1500:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(texts=n, chars_per_text=length, model=model_key)
    return res
