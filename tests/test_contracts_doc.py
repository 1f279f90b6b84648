"""The written contracts (docs/CONTRACTS.md) and the code (engagement_box/staging/contracts.py) agree."""

import re
from pathlib import Path

import pytest

from engagement_box.staging.contracts import SOURCES

DOC = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md").read_text()


def documented(source: str) -> dict[str, str]:
    section = DOC.split(f"## {source} (key")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (\w+) \| [\w ]+ \| (yes|no) \|", section, flags=re.M)
    return dict(rows)


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_contract_column_is_documented_with_its_required_flag(name):
    source = SOURCES[name]
    doc = documented(name)
    assert list(doc) == source.columns
    required = {c: ("yes" if c in source.required_columns else "no") for c in source.columns}
    assert doc == required
