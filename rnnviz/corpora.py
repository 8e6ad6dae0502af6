"""Training corpora: where they live and how the Python-source corpus is assembled.

Corpus text is never stored in this repository. Two kinds of corpus exist:

* **File corpora** (``timemachine``, ``tinyshakespeare``): ``<dir>/<name>.txt`` where ``<dir>`` is
  ``$RNNVIZ_CORPORA`` when set, else ``<repo>/../shared/corpora`` (the repository's parent folder
  holds a ``shared/`` folder beside the clone, both on the dev machine and in CI).
* **The Python-source corpus** (``python-stdlib``), assembled at training time from the *running*
  interpreter's standard library, see :func:`python_stdlib_corpus`. It is reproducible for a given
  Python version; its sha256 is recorded in every checkpoint trained on it.

All text is read as UTF-8 and returned exactly as stored (no newline translation), so its sha256 is
the sha256 of the file's bytes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "RNNVIZ_CORPORA"

#: Name of the corpus built from the standard library.
PYTHON_CORPUS = "python-stdlib"
#: Default cap of the Python corpus, in characters.
PYTHON_CORPUS_MAX_CHARS = 2_000_000
#: Directory names skipped while walking the standard library (tests, vendored and site code).
PYTHON_CORPUS_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests",
                                     "idle_test", "__pycache__", "lib2to3", "idlelib",
                                     "turtledemo", "ensurepip", "config-3.11-x86_64-linux-gnu"})
#: Separator written between two files of the Python corpus.
PYTHON_CORPUS_SEPARATOR = "\n\n"


class CorpusNotFound(FileNotFoundError):
    """A corpus file is missing; the message says where it was looked for."""


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str
    sha256: str
    source: str        #: where it came from (a path, or a description for the Python corpus)
    details: dict      #: extra reproducibility facts (e.g. Python version and file list size)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def corpora_dir() -> Path:
    """``$RNNVIZ_CORPORA`` if set, else ``<repo>/../shared/corpora`` (may not exist)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "corpora"


def corpus_path(name: str) -> Path:
    return corpora_dir() / f"{name}.txt"


def read_text_file(path: str | os.PathLike) -> str:
    """UTF-8 text exactly as stored (``newline=""`` keeps ``\\r\\n`` as is)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def python_stdlib_files(stdlib: str | os.PathLike | None = None) -> list[Path]:
    """The ordered file list of the Python corpus.

    Every ``*.py`` file under ``sysconfig.get_paths()["stdlib"]``, walked recursively, skipping any
    directory whose name is in :data:`PYTHON_CORPUS_SKIP_DIRS`, sorted by the path relative to the
    stdlib root written with ``/`` (plain code-point order).
    """
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in PYTHON_CORPUS_SKIP_DIRS]
        for fn in filenames:
            if fn.endswith(".py"):
                files.append(Path(dirpath) / fn)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def python_stdlib_corpus(max_chars: int = PYTHON_CORPUS_MAX_CHARS,
                         stdlib: str | os.PathLike | None = None) -> Corpus:
    """Concatenate standard-library sources into one text, deterministically.

    Files in the order of :func:`python_stdlib_files`; each is read as UTF-8 (a file that fails to
    decode is skipped), ``\\r\\n`` is normalised to ``\\n``, trailing whitespace at the end of the
    file is stripped, and files are joined with :data:`PYTHON_CORPUS_SEPARATOR`. Whole files are
    added while the total stays ≤ ``max_chars``; the first file that would exceed it ends the corpus.
    """
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total, used = 0, 0
    for path in python_stdlib_files(root):
        try:
            src = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        src = src.replace("\r\n", "\n").rstrip()
        if not src:
            continue
        add = len(src) + (len(PYTHON_CORPUS_SEPARATOR) if parts else 0)
        if total + add > max_chars:
            break
        parts.append(src)
        total += add
        used += 1
    text = PYTHON_CORPUS_SEPARATOR.join(parts) + "\n"
    version = ".".join(map(str, sys.version_info[:3]))
    return Corpus(PYTHON_CORPUS, text, sha256_text(text),
                  f"Python {version} standard library ({root})",
                  {"python_version": version, "files": used, "max_chars": max_chars})


def load_corpus(name_or_path: str, *, python_max_chars: int = PYTHON_CORPUS_MAX_CHARS) -> Corpus:
    """A corpus by name (``timemachine``, ``tinyshakespeare``, ``python-stdlib``) or a text file path.

    Raises :class:`CorpusNotFound` when a named file corpus is not present.
    """
    if name_or_path == PYTHON_CORPUS:
        return python_stdlib_corpus(python_max_chars)
    path = Path(name_or_path)
    if path.suffix == "" and os.sep not in name_or_path and "/" not in name_or_path:
        path = corpus_path(name_or_path)
        if not path.is_file():
            raise CorpusNotFound(f"Corpus {name_or_path!r} not found at {path}; put it there or set "
                                 f"${ENV_VAR} to the folder holding {name_or_path}.txt.")
    elif not path.is_file():
        raise CorpusNotFound(f"Text file not found: {path}")
    text = read_text_file(path)
    name = path.stem
    return Corpus(name, text, sha256_text(text), str(path), {})
