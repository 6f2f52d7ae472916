"""The working clone: commits through fast-import, symlink safety, housekeeping (real git)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.repo.manifest_repo import ManifestRepo
from server.repo.safe_tree import UnsafePath
from testkit.remote import Remote
from testkit.remote import git

AUTHOR = ("Jane", "jane@example.com")


@pytest.fixture
def repo(bare_remote: Remote, tmp_path: Path) -> ManifestRepo:
    clone = ManifestRepo(tmp_path / "clone", bare_remote.url, "main", tmp_path / "home")
    clone.sync(30)
    return clone


def test_each_snapshot_keeps_its_own_content(repo: ManifestRepo, bare_remote: Remote) -> None:
    first = repo.tree.write(("a", "file"), b"one\n")
    link = repo.tree.symlink(("a", "link"), ("a",))
    assert first and link
    stream = repo.commits(("Bot", "bot@example.com"))
    stream.add("first\n", AUTHOR, [first, link])
    second = repo.tree.write(("a", "file"), b"two\n")
    gone = repo.tree.remove(("a", "link"))
    assert second and gone
    stream.add("second\n", AUTHOR, [second, gone])
    shas = stream.finish()
    repo.push(30)
    assert bare_remote.log("%H %s %an %cn") == [
        f"{shas[1]} second Jane Bot",
        f"{shas[0]} first Jane Bot",
    ]
    assert git("show", f"{shas[0]}:a/file", cwd=bare_remote.path) == "one\n"
    assert git("ls-tree", shas[0], "--", "a/link", cwd=bare_remote.path).startswith("120000")
    assert bare_remote.read("a/file") == b"two\n"
    assert not bare_remote.exists("a/link")
    assert repo.head() == shas[1]


def test_unchanged_writes_report_nothing(repo: ManifestRepo) -> None:
    assert repo.tree.write(("x",), b"same") == "x"
    assert repo.tree.write(("x",), b"same") is None
    assert repo.tree.symlink(("l",), ("x",)) == "l"
    assert repo.tree.symlink(("l",), ("x",)) is None
    assert repo.tree.remove(("missing",)) is None


def test_reads_and_writes_refuse_symlinked_directories(repo: ManifestRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not read")
    (repo.path / "environments").symlink_to(outside)
    with pytest.raises(UnsafePath):
        repo.tree.read(("environments", "secret"))
    with pytest.raises(UnsafePath):
        repo.tree.write(("environments", "dev", "config.json"), b"{}")
    (repo.path / "file-link").symlink_to(outside / "secret")
    with pytest.raises(UnsafePath):
        repo.tree.read(("file-link",))
    with pytest.raises(UnsafePath):
        repo.tree.write(("file-link",), b"overwrite")
    assert (outside / "secret").read_text() == "do not read"
    assert not (outside / "dev").exists()


def test_housekeeping_consolidates_the_packs_of_many_batches(repo: ManifestRepo) -> None:
    for number in range(55):
        path = repo.tree.write(("f",), f"{number}\n".encode())
        assert path
        stream = repo.commits(AUTHOR)
        stream.add(f"{number}\n", AUTHOR, [path])
        stream.finish()
    packs = repo.path / ".git" / "objects" / "pack"
    assert len(list(packs.glob("*.pack"))) >= 55
    repo.housekeeping(120)
    assert len(list(packs.glob("*.pack"))) < 5
    assert git("log", "--format=%s", "-1", cwd=repo.path).strip() == "54"


def test_a_release_that_hits_a_bug_is_refused_alone(
    repo: ManifestRepo, bare_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug while applying one release (not the tree's fault) must not fail the batch, nor
    # every batch after it: the release is refused alone, as a server error.
    from server.errors import INTERNAL_APPLY_ERROR
    from server.models import ExportState
    from server.models import StoredRelease
    from server.repo import batch
    from server.repo import layout

    real = layout.apply_release

    def buggy(tree, release, settings):
        if release.application == "buggy":
            raise RuntimeError("a bug")
        return real(tree, release, settings)

    monkeypatch.setattr(layout, "apply_release", buggy)
    releases = [
        StoredRelease(
            id=number,
            application=app,
            version=1,
            manifests={"dev": b"a: 1\n"},
            created_at="2026-11-28T00:00:00Z",
            author_name="Jane",
            author_email="jane@example.com",
            state=ExportState.PENDING,
        )
        for number, app in enumerate(("first", "buggy", "last"), start=1)
    ]
    applied = batch.commit_each(
        repo,
        releases,
        committer=AUTHOR,
        settings=layout.LayoutSettings(),
        guard=None,
        pushed={},
    )
    assert [release_id for release_id, _ in applied.commits] == [1, 3]
    assert [(r[0], r[1]) for r in applied.refusals] == [(2, INTERNAL_APPLY_ERROR)]
    assert "RuntimeError: a bug" in applied.refusals[0][2]
    repo.push(30)
    assert bare_remote.exists("applications/first/releases/1/created_at")
    assert bare_remote.exists("applications/last/releases/1/created_at")
    assert not bare_remote.exists("applications/buggy")
