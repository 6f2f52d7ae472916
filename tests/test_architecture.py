"""The import rules of ARCHITECTURE.md hold, and each contract catches the import it forbids
(checked on a copy of the source with one offending import added)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.server import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_source(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    for package in ("server", "action"):
        shutil.copytree(
            ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return project


def test_the_source_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_source(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "offending_import", "contract"),
    [
        ("server/store/sqlite.py", "import flask", "Nothing below the HTTP layer imports Flask"),
        ("server/repo/git.py", "import werkzeug", "Nothing below the HTTP layer imports Flask"),
        ("server/repo/exporter.py", "import server.http.api", "imports only point down"),
        ("server/store/sqlite.py", "import server.repo.git", "imports only point down"),
        ("server/rules.py", "import server.store", "imports only point down"),
        ("server/release/service.py", "import server.auth.gate", "imports only point down"),
        ("action/client.py", "import server.config", "share no code"),
        ("action/cli/main.py", "import action.runner.signing", "share only the HTTP client"),
    ],
)
def test_each_contract_refuses_the_import_it_forbids(
    tmp_path: Path, module: str, offending_import: str, contract: str
) -> None:
    project = copy_of_the_source(tmp_path)
    source = project / module
    source.write_text(source.read_text() + f"\n{offending_import}  # noqa\n")
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout


LONG = 250


def unexplained_long_modules(root: Path) -> list[str]:
    """Modules over LONG lines whose docstring does not say why ("Over 250 lines: ...")."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > LONG and f"Over {LONG} lines" not in (
            ast.get_docstring(ast.parse(text)) or ""
        ):
            found.append(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("package", ["server", "action", "testkit", "benchmarks"])
def test_a_long_module_says_why_it_is_long(package: str) -> None:
    assert unexplained_long_modules(ROOT / package) == []


def test_a_long_module_without_a_reason_is_found(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text('"""Short."""\n')
    (tmp_path / "long.py").write_text('"""Long, no reason."""\n' + "x = 1\n" * LONG)
    (tmp_path / "explained.py").write_text(
        f'"""Long.\n\nOver {LONG} lines: data."""\n' + "x = 1\n" * LONG
    )
    assert unexplained_long_modules(tmp_path) == ["long.py"]
