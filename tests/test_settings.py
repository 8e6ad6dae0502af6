"""The operator's settings: read in one place of the app (app_pages/ui/settings.py), never by the
library (rnnviz/), with a clear error for a value the app cannot use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app_pages.ui.settings import Settings, SettingsError
from rnnviz.checkpoint import CHECKPOINT_DIR
from rnnviz.corpora import CORPORA_DIR
from rnnviz.serving.cost import REQUEST_SECONDS
from rnnviz.training.limits import MAX_TRAIN_SECONDS

REPO = Path(__file__).resolve().parent.parent
#: The operator's switches (docs: the table in app_pages/ui/settings.py).
SWITCHES = {"RNNVIZ_CHECKPOINT_DIR", "RNNVIZ_CORPORA", "RNNVIZ_REQUEST_SECONDS", "RNNVIZ_TRAIN_WORKERS",
            "RNNVIZ_TRAIN_MAX_SECONDS"}


def test_defaults_without_environment():
    s = Settings.from_environ({})
    assert s == Settings()
    assert (s.checkpoint_dir, s.corpora_dir, s.request_seconds, s.train_workers, s.train_max_seconds) == (
        CHECKPOINT_DIR, CORPORA_DIR, REQUEST_SECONDS, 1, MAX_TRAIN_SECONDS)
    assert CHECKPOINT_DIR == REPO / "checkpoints" and CORPORA_DIR == REPO.parent / "shared" / "corpora"


def test_every_switch_is_read(tmp_path):
    s = Settings.from_environ({"RNNVIZ_CHECKPOINT_DIR": str(tmp_path), "RNNVIZ_CORPORA": str(tmp_path / "c"),
                               "RNNVIZ_REQUEST_SECONDS": "0.5", "RNNVIZ_TRAIN_WORKERS": "3",
                               "RNNVIZ_TRAIN_MAX_SECONDS": "90", "RNNVIZ_OTHER": "ignored"})
    assert s == Settings(tmp_path, tmp_path / "c", 0.5, 3, 90.0)
    assert Settings.from_environ({"RNNVIZ_REQUEST_SECONDS": " "}) == Settings()    # empty: default


@pytest.mark.parametrize("name,value,says", [
    ("RNNVIZ_REQUEST_SECONDS", "abc", "seconds above 0"),
    ("RNNVIZ_REQUEST_SECONDS", "inf", "at most 3600"),
    ("RNNVIZ_TRAIN_WORKERS", "1.5", "a whole number of runs"),
    ("RNNVIZ_TRAIN_WORKERS", "0", "between 1 and 64"),
    ("RNNVIZ_TRAIN_MAX_SECONDS", "-5", "seconds above 0"),
    ("RNNVIZ_CHECKPOINT_DIR", "/no/such/folder", "not a folder"),
])
def test_a_bad_value_names_the_variable_and_what_is_accepted(name, value, says):
    with pytest.raises(SettingsError) as err:
        Settings.from_environ({name: value})
    assert f"{name}={value!r}" in str(err.value) and says in str(err.value)
    assert "unset it" in str(err.value)


def test_the_library_and_the_app_read_no_other_switch():
    """rnnviz/ reads no environment variable of ours (only the XDG cache folder, numba's OpenMP wait
    policy around its thread start, and the argparse defaults of the corpus and training CLIs); app_pages/ reads
    them only in settings.py; at most the five switches exist in the product."""
    allowed_lib = {"rnnviz/corpora.py": {"XDG_CACHE_HOME", "RNNVIZ_CORPORA"}, "rnnviz/kernels.py": {"OMP_WAIT_POLICY"},
                   "rnnviz/training/cli.py": {"RNNVIZ_CORPORA"}}
    for path in sorted((REPO / "rnnviz").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        src = path.read_text(encoding="utf-8")
        read = set(re.findall(r'os\.environ(?:\.get)?[\[(]"([A-Z_]+)"', src))
        assert "getenv" not in src, rel
        assert read <= allowed_lib.get(rel, set()), (rel, read)
    named = set()
    for path in [REPO / "app.py", *sorted((REPO / "app_pages").rglob("*.py")), *sorted((REPO / "rnnviz").rglob("*.py"))]:
        named |= set(re.findall(r"RNNVIZ_[A-Z_]+", path.read_text(encoding="utf-8")))
    assert named <= SWITCHES, named - SWITCHES


def test_a_bad_switch_stops_the_app_with_its_message(monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("RNNVIZ_TRAIN_WORKERS", "many")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    assert not at.exception
    [err] = at.error
    assert "misconfigured" in err.value and "RNNVIZ_TRAIN_WORKERS='many'" in err.value
