"""The action's metadata from real git repositories and event payloads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from action.runner.github import ActionFailure
from action.runner.metadata import ZERO
from action.runner.metadata import collect
from testkit.remote import git


def commit(repo: Path, name: str, message: str | None = None) -> str:
    (repo / name).write_text(name)
    git("add", name, cwd=repo)
    git("commit", "-q", "-m", message or f"add {name}", cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "origin"
    path.mkdir()
    git("init", "-q", "--initial-branch=main", cwd=path)
    return path


def event(tmp_path: Path, name: str, payload: Mapping[str, object], sha: str) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return {"GITHUB_EVENT_NAME": name, "GITHUB_EVENT_PATH": str(path), "GITHUB_SHA": sha}


def test_linear_history(repo: Path) -> None:
    first = commit(repo, "a")
    second = commit(repo, "b", "Subject line\n\nBody with\nseveral lines\n")
    meta = collect(repo, {})
    assert meta.commit == second
    assert meta.previous == first
    assert meta.author == "Test Person <test@example.com>"
    assert meta.message == "Subject line\n\nBody with\nseveral lines"
    assert meta.commit_count == 2


def test_root_commit_has_no_previous(repo: Path) -> None:
    commit(repo, "a")
    meta = collect(repo, {})
    assert meta.previous is None
    assert meta.commit_count == 1


def test_merge_commits_count_first_parents(repo: Path) -> None:
    commit(repo, "a")
    git("checkout", "-q", "-b", "feature", cwd=repo)
    commit(repo, "f1")
    commit(repo, "f2")
    git("checkout", "-q", "main", cwd=repo)
    base = commit(repo, "b")
    git("merge", "-q", "--no-ff", "-m", "merge feature", "feature", cwd=repo)
    meta = collect(repo, {})
    assert meta.commit_count == 3  # a, b, the merge
    assert meta.previous == base  # the first parent
    assert meta.message == "merge feature"


def test_a_shallow_clone_is_deepened(repo: Path, tmp_path: Path) -> None:
    for name in "abcde":
        commit(repo, name)
    clone = tmp_path / "clone"
    git("clone", "-q", "--depth", "1", f"file://{repo}", str(clone), cwd=tmp_path)
    assert git("rev-parse", "--is-shallow-repository", cwd=clone).strip() == "true"
    meta = collect(clone, {})
    assert meta.commit_count == 5
    assert meta.previous == git("rev-parse", "HEAD~1", cwd=repo).strip()
    assert git("rev-parse", "--is-shallow-repository", cwd=clone).strip() == "false"


def test_a_shallow_clone_that_cannot_be_deepened_says_fetch_depth_0(
    repo: Path, tmp_path: Path
) -> None:
    for name in "abc":
        commit(repo, name)
    clone = tmp_path / "clone"
    git("clone", "-q", "--depth", "1", f"file://{repo}", str(clone), cwd=tmp_path)
    git("remote", "set-url", "origin", str(tmp_path / "gone"), cwd=clone)
    with pytest.raises(ActionFailure, match="fetch-depth: 0"):
        collect(clone, {})


def test_push_before_is_the_previous_commit(repo: Path, tmp_path: Path) -> None:
    a = commit(repo, "a")
    commit(repo, "b")
    c = commit(repo, "c")
    meta = collect(repo, event(tmp_path, "push", {"before": a, "forced": False}, c))
    assert meta.previous == a  # the push brought b and c


@pytest.mark.parametrize("payload", [{"before": ZERO}, {"before": "a" * 40, "forced": True}])
def test_new_branch_or_forced_push_uses_the_first_parent(
    repo: Path, tmp_path: Path, payload: dict[str, object]
) -> None:
    a = commit(repo, "a")
    b = commit(repo, "b")
    if payload.get("forced"):
        payload = {**payload, "before": a}
    meta = collect(repo, event(tmp_path, "push", payload, b))
    assert meta.previous == a


def test_pull_request_uses_the_head_commit_not_the_merge(repo: Path, tmp_path: Path) -> None:
    commit(repo, "a")
    git("checkout", "-q", "-b", "pr", cwd=repo)
    head = commit(repo, "p", "the PR change")
    git("checkout", "-q", "main", cwd=repo)
    commit(repo, "b")
    git("merge", "-q", "--no-ff", "-m", "Merge pr into main", "pr", cwd=repo)
    merge = git("rev-parse", "HEAD", cwd=repo).strip()
    payload = {"pull_request": {"head": {"sha": head}}}
    meta = collect(repo, event(tmp_path, "pull_request", payload, merge))
    assert meta.commit == head
    assert meta.message == "the PR change"
    assert meta.commit_count == 2  # a, p
