"""Every file and function the README and docs/ name exists: a newcomer who follows
docs/ARCHITECTURE.md from a number to its code gets there in one hop, after any rename.

Checked: a backticked path of a Python or SQL file (`sql/work/buyer_days.sql`,
`value/marts.py::purchase_fits`: relative to the repository, `engagement_box/` or `sql/`; a bare
file name must name a tracked file), the function, class or name after `::`, and a backticked
`module.name` whose module is one of the project's (`personas.model_in_force`).
"""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]
FILE = re.compile(r"`([\w./-]+\.(?:py|sql))(?:::([\w.]+))?`")
DOTTED = re.compile(r"`([a-z_]+)\.([A-Za-z_]+)(?:\(\))?`")
# `marts.customer` is a table, not a module's name, even where a module has the schema's name.
SCHEMAS = {"staging", "intermediate", "work", "marts", "history", "history_rows", "engagement"}


def tracked_files() -> list[str]:
    """The repository's files (git's list; the tree without hidden folders outside a clone)."""
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode == 0:
        return [f for f in listed.stdout.split() if (REPO / f).is_file()]
    return [
        str(p.relative_to(REPO))
        for p in REPO.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO).parts)
    ]


def defines(path: str, name: str) -> bool:
    source = (REPO / path).read_text(encoding="utf-8")
    pattern = (
        rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b"
        rf"|^\s*{re.escape(name)}\s*(?::[^=\n]*)?="
    )
    return re.search(pattern, source, flags=re.M) is not None


def broken_references(text: str, files: list[str]) -> list[str]:
    by_name: dict[str, list[str]] = {}
    modules: dict[str, list[str]] = {}
    for f in files:
        by_name.setdefault(Path(f).name, []).append(f)
        if f.endswith(".py"):
            modules.setdefault(Path(f).stem, []).append(f)
    broken = []
    for match in FILE.finditer(text):
        path, symbol = match.groups()
        if "/" in path:
            found = [c for c in (path, f"engagement_box/{path}", f"sql/{path}") if c in files]
        else:
            found = by_name.get(path, [])
        if not found:
            broken.append(f"{match.group(0)}: no such file")
        elif symbol and not any(defines(f, symbol.split(".")[-1]) for f in found):
            broken.append(f"{match.group(0)}: {symbol} is not defined there")
    for match in DOTTED.finditer(text):
        module, name = match.groups()
        if module in SCHEMAS or module not in modules or name in ("py", "sql"):
            continue
        if not any(defines(f, name) for f in modules[module]):
            broken.append(f"{match.group(0)}: {module} defines no {name}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_file_and_function_a_document_names_exists(document):
    text = (REPO / document).read_text(encoding="utf-8")
    assert broken_references(text, tracked_files()) == []


def test_a_renamed_function_or_moved_file_is_reported():
    files = tracked_files()
    text = (
        "`engagement_box/value/summary.py::refresh_buyer_days` `sql/work/buyer_days.sql` "
        "`personas.model_in_force` `marts.customer` "
        "`value/summary.py::refresh_buyer_days_renamed` `sql/work/gone.sql` "
        "`personas.model_gone` `gone.py`"
    )
    assert broken_references(text, files) == [
        "`value/summary.py::refresh_buyer_days_renamed`: refresh_buyer_days_renamed is not "
        "defined there",
        "`sql/work/gone.sql`: no such file",
        "`gone.py`: no such file",
        "`personas.model_gone`: personas defines no model_gone",
    ]
