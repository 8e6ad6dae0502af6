"""Training corpora: where they live and how the Python-source corpus is assembled.

Corpus text is never stored in this repository. Two kinds of corpus exist:

* **File corpora** (``timemachine``, ``tinyshakespeare``): ``<folder>/<name>.txt`` where
  ``<folder>`` is the caller's ``folder`` argument, by default :data:`CORPORA_DIR` =
  ``<repo>/../shared/corpora`` (the repository's parent folder holds a ``shared/`` folder beside
  the clone, both on the dev machine and in CI); failing that, the download cache
  (:func:`cache_dir`), which only :func:`fetch` fills, on explicit request.
* **The Python-source corpus** (``python-stdlib``), assembled at training time from the *running*
  interpreter's standard library, see :func:`python_stdlib_corpus`. It is reproducible for a given
  Python version; its sha256 is recorded in every checkpoint trained on it.

Fetching (like d2l's ``DATA_HUB``): :data:`DATA_HUB` maps a corpus name to (URL, sha256).
``python -m rnnviz.corpora fetch NAME`` (or the Units view's "Fetch the corpus" button) downloads it
into :func:`cache_dir` and keeps it only if its sha256 matches. The pinned sha256s are those of the
copies the shipped checkpoints were trained on (``corpus_sha256`` in their provenance); that the URLs
still serve these exact bytes could not be checked offline, and a mismatch is refused, never used.
Nothing fetches without being asked, and no test needs the network.

All text is read as UTF-8 and returned exactly as stored (no newline translation), so its sha256 is
the sha256 of the file's bytes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The default corpus folder (``shared/corpora`` beside the clone; may not exist).
CORPORA_DIR = REPO_ROOT.parent / "shared" / "corpora"

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


#: Downloadable corpora: name → (URL, sha256 of the bytes). See the module docstring.
DATA_HUB: dict[str, tuple[str, str]] = {
    "timemachine": ("http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt",
                    "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516"),
    "tinyshakespeare": ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/input.txt",
                        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
}
#: Largest download accepted (bytes).
MAX_FETCH_BYTES = 64 * 2**20


class CorpusNotFound(FileNotFoundError):
    """A corpus file is missing; the message says where it was looked for."""


class FetchError(OSError):
    """A corpus could not be downloaded or did not verify; the message says why, in one line."""


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str
    sha256: str
    source: str        #: where it came from (a path, or a description for the Python corpus)
    details: dict      #: extra reproducibility facts (e.g. Python version and file list size)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_dir() -> Path:
    """Where :func:`fetch` stores downloads: ``$XDG_CACHE_HOME/rnnviz``, else ``~/.cache/rnnviz``
    (the XDG base-directory standard)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnviz"


def corpus_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    """``<folder>/<name>.txt`` (default :data:`CORPORA_DIR`), or the fetched copy in the cache
    when only that exists."""
    path = Path(folder or CORPORA_DIR).expanduser() / f"{name}.txt"
    cached = cache_dir() / f"{name}.txt"
    return cached if not path.is_file() and cached.is_file() else path


def fetch(name: str, *, folder: str | os.PathLike | None = None, timeout: float = 60.0) -> Path:
    """The file of registered corpus ``name``: found locally (see :func:`corpus_path`), else
    downloaded from :data:`DATA_HUB` into :func:`cache_dir` and kept only if its sha256 matches.
    Raises KeyError for an unregistered name, FetchError when offline or on a mismatch."""
    url, sha = DATA_HUB[name]
    path = corpus_path(name, folder)
    if path.is_file():
        return path
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - pinned URL + sha256
            data = resp.read(MAX_FETCH_BYTES + 1)
    except OSError as err:   # URLError, timeouts, refused connections
        raise FetchError(f"Could not download {name} from {url} ({getattr(err, 'reason', err)}); "
                         "are you offline?") from None
    got = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_FETCH_BYTES or got != sha:
        raise FetchError(f"The download of {name} from {url} is not the pinned file (sha256 {got[:12]}… "
                         f"instead of {sha[:12]}…); it was not kept.")
    dest = cache_dir() / f"{name}.txt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest


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


def load_corpus(name_or_path: str, *, python_max_chars: int = PYTHON_CORPUS_MAX_CHARS,
                folder: str | os.PathLike | None = None) -> Corpus:
    """A corpus by name (``timemachine``, ``tinyshakespeare``, ``python-stdlib``), looked up in
    ``folder`` (default :data:`CORPORA_DIR`, see :func:`corpus_path`), or a text file path.

    Raises :class:`CorpusNotFound` when a named file corpus is not present.
    """
    if name_or_path == PYTHON_CORPUS:
        return python_stdlib_corpus(python_max_chars)
    path = Path(name_or_path)
    if path.suffix == "" and os.sep not in name_or_path and "/" not in name_or_path:
        path = corpus_path(name_or_path, folder)
        if not path.is_file():
            how = (f"fetch it with python -m rnnviz.corpora fetch {name_or_path}, put it there"
                   if name_or_path in DATA_HUB else "put it there")
            raise CorpusNotFound(f"Corpus {name_or_path!r} not found at {path}; {how} or point "
                                 f"the corpus folder (RNNVIZ_CORPORA, --corpora) at the folder "
                                 f"holding {name_or_path}.txt.")
    elif not path.is_file():
        raise CorpusNotFound(f"Text file not found: {path}")
    text = read_text_file(path)
    name = path.stem
    return Corpus(name, text, sha256_text(text), str(path), {})


def main(argv: list[str] | None = None) -> int:
    """``python -m rnnviz.corpora fetch NAME`` downloads a registered corpus (sha256-checked);
    ``python -m rnnviz.corpora list`` shows the registry and where each corpus is found.
    ``--corpora DIR`` is the corpus folder (default: ``$RNNVIZ_CORPORA``, else :data:`CORPORA_DIR`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m rnnviz.corpora", description="Find or fetch the corpora.")
    ap.add_argument("--corpora", default=os.environ.get("RNNVIZ_CORPORA") or str(CORPORA_DIR),
                    help="folder holding <name>.txt (default: $RNNVIZ_CORPORA, else ../shared/corpora)")
    ap.add_argument("command", choices=("list", "fetch"))
    ap.add_argument("name", nargs="?", choices=tuple(DATA_HUB), help="the corpus to fetch")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "list":
        for name, (url, sha) in DATA_HUB.items():
            path = corpus_path(name, args.corpora)
            print(f"{name}: {path if path.is_file() else 'not here'}  ({url}, sha256 {sha})")
        return 0
    if args.name is None:
        ap.error("fetch needs a corpus name")
    try:
        print(fetch(args.name, folder=args.corpora))
    except FetchError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
