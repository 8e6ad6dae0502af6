"""Every code block of README.md and docs/*.md runs, from a temporary folder outside the repository,
with the installed package (``python3 -m pip install -e .``, README's command 1; CI does it).

A block's info string says how: ```` ```python ```` and ```` ```bash ```` run (the blocks of one file
in order, in one folder, so a later block may use a file an earlier one wrote; ``bash -euo
pipefail``, with the interpreter's scripts such as ``rnnviz-train`` on PATH). ```` ```bash no-run:
<reason> ```` is shown, not run (installs, servers, load runs, hour-long trainings): the options it
gives to our command lines must exist (each command's ``--help``), and README's command 1 is started
for real below (the server must answer). A fence with no language is a picture, not code.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tools.serve import free_port, stop_process

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
#: Seconds one block may take (the docs' examples are meant to be quick).
BLOCK_S = 120
#: Our command lines, as a docs line starts them → the module whose --help lists their options.
#: tools/replicas.py hands what follows `--` to tools/loadtest.py.
COMMAND = re.compile(r"(?:^|&&|;)\s*(?:python3?\s+-m\s+((?:rnnviz|tools)[\w.]*)|python3?\s+(tools/\w+)\.py|"
                     r"(rnnviz-train))\b([^\n#;&|]*)", re.M)
ALIASES = {"rnnviz-train": "rnnviz.training"}
PASS_ON = {"tools.replicas": "tools.loadtest"}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    lang: str
    no_run: str | None     # the reason, for a block that is not run
    marker: str            # what follows the language in the info string
    code: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        lang, _, rest = info.partition(" ")
        reason = rest.partition("no-run:")[2].strip() if rest.startswith("no-run:") else None
        out.append(Block(doc, text.count("\n", 0, m.start()) + 1, lang, reason, rest.strip(), m.group(2)))
    return out


ALL = [b for doc in DOCS for b in blocks(doc)]
RUN = {doc: [b for b in blocks(doc) if b.lang in ("python", "bash") and b.no_run is None] for doc in DOCS}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("RNNVIZ_")}
    env["OMP_NUM_THREADS"] = "1"      # plain torch code in the examples: no spinning second thread
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], cwd: Path, timeout: float = BLOCK_S) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_every_block_says_how_it_runs():
    bad = [f"{b}: ```{b.lang}" for b in ALL if b.lang not in ("", "python", "bash")]
    assert not bad, f"code blocks must be ```python or ```bash (or a picture, no language): {bad}"
    vague = [f"{b}: {b.marker!r}" for b in ALL if b.no_run == "" or (b.marker and b.no_run is None)]
    assert not vague, f"the only marker is no-run, with its reason (```bash no-run: why): {vague}"


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    assert REPO not in folder.resolve().parents, "the temporary folder must be outside the repository"
    found = _run([sys.executable, "-c", "import rnnviz; print(rnnviz.__file__)"], folder)
    if found.returncode != 0:
        pytest.fail(f"`import rnnviz` fails outside the repository with {sys.executable}: run "
                    f"`python3 -m pip install -e .` in {REPO} first (README, command 1).\n{found.stderr[-500:]}")
    where = Path(found.stdout.strip()).resolve()
    if REPO not in where.parents:
        pytest.fail(f"`import rnnviz` outside the repository finds {where}, not this checkout: run "
                    f"`python3 -m pip install -e .` in {REPO}.")
    return folder


@pytest.mark.parametrize("doc", [d for d in DOCS if RUN[d]], ids=lambda d: d.name)
def test_the_blocks_of_each_doc_run_outside_the_repository(outside, doc):
    folder = outside / doc.stem
    folder.mkdir()
    for i, b in enumerate(RUN[doc]):
        if b.lang == "python":
            script = folder / f"block{i}.py"
            script.write_text(b.code, encoding="utf-8")
            args = [sys.executable, script.name]
        else:
            args = ["bash", "-euo", "pipefail", "-c", b.code]
        t0 = time.monotonic()
        done = _run(args, folder)
        assert done.returncode == 0, f"{b} failed ({time.monotonic() - t0:.0f} s):\n{b.code}\n" \
                                     f"--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-3000:]}"


def _commands(code: str) -> list[tuple[str, list[str]]]:
    """(module, its --options) for each of our commands in a block."""
    code = code.replace("\\\n", " ")
    found = []
    for m in COMMAND.finditer(code):
        module = m.group(1) or (m.group(2) or "").replace("/", ".") or ALIASES[m.group(3)]
        own, _, passed = m.group(4).partition(" -- ")
        found.append((module, re.findall(r"(?<![\w-])--[a-z][\w-]*", own)))
        if passed and module in PASS_ON:
            found.append((PASS_ON[module], re.findall(r"(?<![\w-])--[a-z][\w-]*", passed)))
    return found


def _help_of(module: str) -> str:
    """``python -m module --help``, run in this process (the imports are already paid for)."""
    out, argv = io.StringIO(), sys.argv
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # runpy: the package imported it already
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = argv
    assert stop.value.code in (0, None), f"python -m {module} --help exited with {stop.value.code}"
    return out.getvalue()


def test_commands_that_are_not_run_name_options_that_exist():
    wanted: dict[str, set[str]] = {}
    for b in ALL:
        if b.lang == "bash":
            for module, options in _commands(b.code):
                wanted.setdefault(module, set()).update(options)
    assert "rnnviz.training" in wanted, "no rnnviz-train command found in the docs"

    helps = {module: _help_of(module) for module, options in wanted.items() if options}
    unknown = {m: sorted(o for o in wanted[m] if not re.search(rf"{o}\b", text)) for m, text in helps.items()}
    assert not {m: o for m, o in unknown.items() if o}, f"options the docs give that the commands lack: {unknown}"


def test_readme_command_1_serves_the_app():
    """README's first command, its install part left to CI: the server it starts answers."""
    first = next(b for b in blocks(REPO / "README.md") if "streamlit run" in b.code)
    line = next(ln for ln in first.code.splitlines() if "streamlit run" in ln)
    serve = shlex.split(line.split("&&")[-1].strip())
    port = free_port()
    env = {**_env(), "STREAMLIT_SERVER_PORT": str(port), "STREAMLIT_SERVER_HEADLESS": "true"}
    serve[0] = sys.executable if serve[0] in ("python", "python3") else serve[0]
    proc = subprocess.Popen(serve, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 90, ""
        while time.monotonic() < deadline and proc.poll() is None and answer != "ok":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    answer = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert answer == "ok", f"`{line}` did not serve (exit {proc.poll()})"
    finally:
        stop_process(proc)
        proc.stderr.close()


def test_the_installed_versions_are_within_the_pins():
    """requirements*.txt say which versions were tested: what is installed here must fit them."""
    outside = []
    for name in ("requirements.txt", "requirements-test.txt"):
        for raw in (REPO / name).read_text(encoding="utf-8").splitlines():
            line = raw.split("#")[0].strip()
            if not line or line.startswith("-"):
                continue
            req = Requirement(line)
            have = metadata.version(req.name)
            if not req.specifier.contains(have.split("+")[0], prereleases=True):
                outside.append(f"{req} (installed {have})")
    assert not outside, f"installed versions outside the pins: {outside}"


def test_the_code_states_contracts_not_a_diary():
    """Dated figures live in git history and docs/BENCHMARKS.md, not in the code's docstrings."""
    diary = re.compile(r"\b20\d\d-\d\d-\d\d\b|\bcommit [0-9a-f]{7,}\b")
    found = [f"{p.relative_to(REPO)}:{i}" for folder in ("rnnviz", "app_pages", "tools")
             for p in sorted((REPO / folder).rglob("*.py"))
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if diary.search(line)]
    found += [f"{p.relative_to(REPO)}" for p in DOCS if p.name != "RELIABILITY.md" and
              diary.search(p.read_text(encoding="utf-8"))]
    assert not found, f"dated measurements or commit hashes: {found}"


def test_the_readme_reads_in_five_minutes():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; details belong in docs/"
    links = re.findall(r"\]\(((?:docs/)[^)#]+)\)", "\n".join(lines))
    assert all((REPO / link).exists() for link in links), [link for link in links if not (REPO / link).exists()]


def test_the_operator_switches_are_one_table():
    """Every RNNVIZ_* name the code reads is a row of docs/OPERATIONS.md's table, and there are at most five."""
    rows = re.findall(r"^\| `(RNNVIZ_\w+)` \|", (REPO / "docs/OPERATIONS.md").read_text(encoding="utf-8"), re.M)
    used = {name for folder in ("rnnviz", "app_pages", "tools") for p in (REPO / folder).rglob("*.py")
            for name in re.findall(r"\bRNNVIZ_[A-Z_]*[A-Z]\b", p.read_text(encoding="utf-8"))}
    used |= set(re.findall(r"\bRNNVIZ_[A-Z_]*[A-Z]\b", (REPO / "app.py").read_text(encoding="utf-8")))
    assert len(rows) == len(set(rows)) <= 5, rows
    assert used <= set(rows), f"switches the code reads that docs/OPERATIONS.md does not list: {used - set(rows)}"
