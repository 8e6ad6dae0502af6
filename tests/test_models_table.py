"""tools.models_table: the docs' table and reproduce commands are what the shipped checkpoints say."""

from __future__ import annotations

import re

from rnnviz.corpora import REPO_ROOT
from tools.models_table import main, models_table, reproduce_commands


def _between(text: str, marker: str) -> str:
    return re.search(rf"<!-- {marker}:start -->\n(.*?)\n<!-- {marker}:end -->", text, re.S).group(1)


def test_docs_table_and_commands_match_the_checkpoints():
    doc = (REPO_ROOT / "docs" / "MODELS.md").read_text(encoding="utf-8")
    assert _between(doc, "table") == models_table()
    assert _between(doc, "commands") == reproduce_commands()


def test_cli_prints_the_table(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == models_table()
