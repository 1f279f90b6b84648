"""The folder tree is the architecture: pipelines/ is the Dagster code location, assets/ the thin
assets, engagement_box/ the domain code with no Dagster import (docs/ARCHITECTURE.md)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE_LOCATION = {
    "__init__.py",
    "definitions.py",
    "resources.py",
    "partitions.py",
    "jobs.py",
    "schedules.py",
    "sensors.py",
    "loggers.py",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_domain_package_never_imports_dagster():
    offenders = {}
    for path in sorted((REPO / "engagement_box").rglob("*.py")):
        if path.name == "cli.py" and path.parent.name == "engagement_box":
            continue  # the operator's front end launches Dagster runs
        dagster = {m for m in imported_modules(path) if m.split(".")[0].startswith("dagster")}
        if dagster:
            offenders[str(path.relative_to(REPO))] = sorted(dagster)
    assert offenders == {}


def test_pipelines_holds_only_the_code_location():
    assert {p.name for p in (REPO / "pipelines").glob("*.py")} <= CODE_LOCATION


def test_no_domain_module_imports_the_code_location_or_the_assets():
    for path in sorted((REPO / "engagement_box").rglob("*.py")):
        if path.name == "cli.py" and path.parent.name == "engagement_box":
            continue
        roots = {m.split(".")[0] for m in imported_modules(path)}
        assert not roots & {"pipelines", "assets"}, path
