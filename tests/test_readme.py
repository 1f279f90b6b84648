"""Every command README.md shows works as written (the expensive ones in a cheaper form).

- The two quick-start commands are the ones `.ci/run` runs, verbatim: CI runs them on a clean clone.
- Every other shell command the README shows starts a program that exists after the install,
  and every option it passes is one that program accepts (checked against its `--help`).
  tests/test_cli.py runs the `dagster asset materialize` command as written.
- `dagster dev` loads the code location that workspace.yaml names.
"""

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def shell_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def commands() -> list[str]:
    """Each command line of the README's bash blocks and inline `engagement-box ...` code."""
    found = []
    for block in shell_blocks():
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    found += re.findall(r"`((?:\.venv/bin/)?engagement-box [^`]+)`", README)
    return found


def docs_commands() -> list[str]:
    """The inline `engagement-box ...` and `.venv/bin/...` commands the docs give (docs/*.md):
    the README's detail moved there (docs/OPERATIONS.md), with its commands."""
    found = []
    for doc in sorted((REPO / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        found += re.findall(r"`((?:\.venv/bin/)?engagement-box [^`]+)`", text)
    return sorted(set(found))


def test_the_quick_start_commands_are_the_ones_ci_runs():
    blocks = shell_blocks()
    install_and_run, tests = blocks[0].strip(), blocks[1].strip()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_run.endswith(".venv/bin/engagement-box run")
    for part in install_and_run.split(" && "):
        assert part in ci, part
    assert tests in ci.splitlines()


def _program_and_options(command: str) -> tuple[list[str], list[str]]:
    """The program (with its subcommand) to ask for --help, and the options the README passes."""
    words = shlex.split(command.split("&&")[-1])
    if words[0].endswith("python") and words[1:2] and words[1].endswith(".py"):
        program, rest = [str(BIN / "python"), str(REPO / words[1])], words[2:]
    else:
        name = Path(words[0]).name
        program = [str(BIN / name)]
        rest = words[1:]
        if name == "engagement-box" and rest:
            program, rest = program + rest[:1], rest[1:]
        elif name.startswith("dagster"):  # dagster asset materialize, dagster-daemon run
            while rest and not rest[0].startswith("-"):
                program, rest = program + rest[:1], rest[1:]
    return program, [w.split("=")[0] for w in rest if w.startswith("--")]


@pytest.mark.parametrize(
    "command",
    [
        c
        for c in [*commands(), *docs_commands()]
        if re.search(r"engagement-box|benchmarks/|bin/dagster", c)
    ],
)
def test_each_command_exists_and_accepts_the_options_shown(command):
    program, options = _program_and_options(command)
    code, out, err = _help(tuple(program))
    assert code == 0, err[-2000:]
    for option in options:
        assert option in out, f"{command}: {option} is not an option"


@functools.cache
def _help(program: tuple[str, ...]) -> tuple[int, str, str]:
    """`program --help`, asked once per program (eight README commands are `engagement-box run`
    with other options; each start costs seconds)."""
    shown = subprocess.run(
        [*program, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    return shown.returncode, shown.stdout, shown.stderr


def test_dagster_dev_loads_the_code_location_named_in_workspace_yaml():
    loaded = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]


def test_the_duckdb_command_shown_is_installed(tmp_path):
    assert ".venv/bin/duckdb " in README
    db = tmp_path / "x.duckdb"
    out = subprocess.run(
        [str(BIN / "duckdb"), str(db), "-c", "SELECT 40 + 2 AS answer"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "42" in out.stdout


def test_the_generate_command_shown_writes_exports(tmp_path):
    """The README's `engagement-box generate` command, as written but smaller and elsewhere."""
    (command,) = [c for c in commands() if " generate " in c]
    words = shlex.split(command)
    words[words.index("--out") + 1] = str(tmp_path / "big")
    words[words.index("--customers") + 1] = "30"
    done = subprocess.run(
        [str(BIN / "engagement-box"), *words[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "big").iterdir() if p.is_dir()) == [
        "customers",
        "fx_rates",
        "orders",
        "referrals",
        "reviews",
        "social",
    ]


def test_every_folder_under_data_the_docs_name_is_ignored_by_git_but_the_sample():
    """The folders the README and docs point runs at hold customers' emails (audience files,
    lakes, warehouses): `git add -A` must not take them. The Spark command's
    `data/lake_audiences/` was not ignored (a review)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    texts = [README, *(p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md"))]
    folders = {m for text in texts for m in re.findall(r"\bdata/[A-Za-z0-9_]+", text)}
    assert {"data/lake_audiences", "data/warehouse", "data/sample"} <= folders
    for folder in sorted(folders):
        probe = f"{folder}/customers.csv"
        ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO).returncode == 0
        assert ignored == (folder != "data/sample"), (folder, ignored)
