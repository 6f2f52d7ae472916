"""The lowest-versions constraints file pins exactly the lower bound of every direct dependency.

CI installs ci/lowest-constraints.txt for its lowest-versions pass (ci/test-lowest), so a
range changed in pyproject.toml without regenerating the file would test the wrong versions.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "ci" / "lowest-constraints.txt"


def _direct_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version, f"not an exact pin: {line!r}"
        assert canonicalize_name(name) not in pins, f"pinned twice: {name}"
        pins[canonicalize_name(name)] = version
    return pins


def test_every_direct_dependency_is_pinned_to_its_lower_bound() -> None:
    expected = {}
    for requirement in _direct_requirements():
        lows = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{requirement} needs exactly one '>=' lower bound"
        assert requirement.specifier.contains(lows[0]), f"{requirement} excludes its lower bound"
        expected[canonicalize_name(requirement.name)] = lows[0]
    assert _pins() == expected


def test_the_generator_drops_extras_and_refuses_a_range_without_a_lower_bound(
    tmp_path: Path,
) -> None:
    spec = importlib.util.spec_from_file_location("lowest", ROOT / "ci" / "lowest_constraints.py")
    assert spec is not None and spec.loader is not None
    lowest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lowest)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["Flask_HTTPAuth>=4.8,<5", "pyjwt[crypto] >= 2.8, < 3"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8.4,<10"]\n'
    )
    assert lowest.render(pyproject).splitlines()[-3:] == [
        "flask-httpauth==4.8",
        "pyjwt==2.8",
        "pytest==8.4",
    ]
    pyproject.write_text('[project]\ndependencies = ["flask<4"]\n')
    with pytest.raises(SystemExit, match="lower bound"):
        lowest.render(pyproject)


def test_the_generator_agrees_with_the_checked_in_file() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "lowest_constraints.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
