"""Release metadata from the workflow's git checkout and event payload.

The commit built is the pull request's head on pull_request events (``GITHUB_SHA`` is the
merge commit there). The previous commit is the push's ``before`` unless the push created the
branch (all zeros) or was forced; otherwise the first parent; none for a root commit. A
shallow clone is deepened first, so a commit count is never read from a partial history.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from action.runner.github import ActionFailure

ZERO = "0" * 40
SHALLOW_HELP = (
    "the checkout is shallow and could not be deepened ({error}). The version (commit count) "
    "and the previous commit need the full history: check out with\n"
    "  - uses: actions/checkout@<sha>\n    with:\n      fetch-depth: 0"
)


@dataclass(frozen=True)
class Metadata:
    """What the release says about the source."""

    commit: str
    previous: str | None
    author: str
    message: str
    commit_count: int


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git in ``cwd`` and return its stdout."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise ActionFailure(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def load_event(environ: Mapping[str, str]) -> dict[str, Any]:
    """The event payload (``GITHUB_EVENT_PATH``), or {} outside a workflow."""
    path = environ.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def ensure_full_history(cwd: Path) -> bool:
    """Deepen a shallow clone (``git fetch --unshallow``); return whether it was shallow."""
    if git(cwd, "rev-parse", "--is-shallow-repository").strip() != "true":
        return False
    result = subprocess.run(
        ["git", "fetch", "--unshallow", "--quiet"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise ActionFailure(SHALLOW_HELP.format(error=result.stderr.strip() or "git failed"))
    return True


def _exists(cwd: Path, sha: str) -> bool:
    return (
        bool(sha)
        and subprocess.run(
            ["git", "cat-file", "-e", f"{sha}^{{commit}}"],
            cwd=cwd,
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode
        == 0
    )


def collect(cwd: Path, environ: Mapping[str, str]) -> Metadata:
    """Collect the metadata of the commit this workflow run builds.

    :raises ActionFailure: with what to change in the workflow.
    """
    ensure_full_history(cwd)
    event = load_event(environ)
    event_name = environ.get("GITHUB_EVENT_NAME", "")
    commit = environ.get("GITHUB_SHA", "") or git(cwd, "rev-parse", "HEAD").strip()
    if event_name in ("pull_request", "pull_request_target"):
        commit = str(event.get("pull_request", {}).get("head", {}).get("sha") or commit)
    if not _exists(cwd, commit):
        git(cwd, "fetch", "--quiet", "origin", commit, check=False)
        if not _exists(cwd, commit):
            raise ActionFailure(f"commit {commit} is not in the checkout")
    previous: str | None = None
    before = str(event.get("before") or "") if event_name == "push" else ""
    if before and before != ZERO and not event.get("forced") and _exists(cwd, before):
        previous = before
    else:
        parents = git(cwd, "rev-list", "--parents", "-n", "1", commit).split()
        previous = parents[1] if len(parents) > 1 else None
    author = git(cwd, "log", "-1", "--format=%an <%ae>", commit).strip()
    message = git(cwd, "log", "-1", "--format=%B", commit).rstrip("\n")
    count = int(git(cwd, "rev-list", "--count", "--first-parent", commit).strip())
    return Metadata(
        commit=commit, previous=previous, author=author, message=message, commit_count=count
    )
