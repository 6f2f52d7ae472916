"""Adopting what the manifest repository already holds.

A team migrating from Kuberpult points the server at its existing repository, and tools or
people may push releases too. Releases found in the tree but missing from the store are read
back from their files (Kuberpult's layout, which is ours) so that idempotency (200/409) and
version assignment see them: the store never hands out a version the repository already has,
and a release is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

from server import rules
from server.errors import ValidationError
from server.models import FoundRelease
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import SafeTree

_TEXT_FILES = ("source_commit_id", "source_author", "source_message", "display_version")


def release_numbers(tree: SafeTree) -> set[tuple[str, int]]:
    """(application, version) of every release directory in ``tree`` with valid names."""
    present: set[tuple[str, int]] = set()
    for application in _listing(tree, ("applications",)):
        if not _valid(rules.application, application):
            continue
        for name in _listing(tree, ("applications", application, "releases")):
            if name.isascii() and name.isdigit() and not name.startswith("0"):
                if int(name) <= rules.MAX_VERSION:
                    present.add((application, int(name)))
    return present


def releases_in_tree(
    tree: SafeTree, present: set[tuple[str, int]], known: set[tuple[str, int]]
) -> Iterator[FoundRelease]:
    """Every well-formed release of ``present`` (see ``release_numbers``) that is not
    ``known``. Anything that does not follow the rules (a symlink, text that is not UTF-8) is
    skipped, never adopted half.
    """
    for application, version in sorted(present - known):
        try:
            found = _read_release(tree, application, version)
        except (ApplyError, UnicodeDecodeError):
            continue
        if found is not None:
            yield found


def _listing(tree: SafeTree, parts: tuple[str, ...]) -> list[str]:
    """A directory's names; none where the tree holds a symlink or a file instead."""
    try:
        return tree.list(parts)
    except ApplyError:
        return []


def _read_release(tree: SafeTree, application: str, version: int) -> FoundRelease | None:
    directory = ("applications", application, "releases", str(version))
    manifests: dict[str, bytes] = {}
    for env in tree.list((*directory, "environments")):
        if not _valid(rules.environment, env):
            continue
        content = tree.read((*directory, "environments", env, "manifests.yaml"))
        if content is not None:
            manifests[env] = content
    if not manifests:
        return None
    texts = {}
    for name in _TEXT_FILES:
        raw = tree.read((*directory, name))
        if raw is not None:
            texts[name] = raw.decode("utf-8")
    created = tree.read((*directory, "created_at"))
    team = tree.read(("applications", application, "team"))
    team_name = team.decode("utf-8").strip() if team else None
    return FoundRelease(
        application=application,
        version=version,
        manifests=manifests,
        created_at=created.decode("utf-8").strip() if created else None,
        team=team_name if team_name and _valid(rules.team, team_name) else None,
        texts=texts,
    )


def _valid(rule: Callable[[str], str], name: str) -> bool:
    try:
        rule(name)
    except ValidationError:
        return False
    return True
