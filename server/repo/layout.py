"""What a release does to the manifest repository, in Kuberpult's git-mode layout.

``apply_release`` writes the release directory, auto-deploys it to every environment with
``upstream.latest`` (or queues it behind a lock), cleans up old releases and records commit
data. Everything it writes is derived from the release row and the tree, never from the clock,
so applying the same release twice gives the same files.

Over 250 lines: all of Kuberpult's layout in one place, so no path is written by two modules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime

from server.models import EXISTS_IN_REPOSITORY
from server.models import StoredRelease
from server.repo import argocd
from server.repo.argocd import ArgoCdSettings
from server.repo.commit_data import CommitData
from server.repo.commit_data import forget_application
from server.repo.environments import read_config
from server.repo.safe_tree import ApplyError
from server.repo.safe_tree import Parts
from server.repo.safe_tree import SafeTree
from server.repo.safe_tree import changed


class ReleaseTooOld(ApplyError):
    """The cleanup rule would remove this release as soon as it is written."""

    code = "too_old"


@dataclass(frozen=True)
class LayoutSettings:
    """The repository-writing options of the configuration."""

    release_versions_limit: int = 20
    write_commit_data: bool = False
    argocd: ArgoCdSettings = ArgoCdSettings("", "", enabled=False)


@dataclass
class Change:
    """What applying something changed: commit message lines, paths, cleaned-up versions."""

    messages: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    removed_versions: list[int] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The commit message: one line per step, as Kuberpult joins them."""
        return "\n".join(self.messages) + "\n"


def with_argocd_files(tree: SafeTree, change: Change, settings: LayoutSettings) -> Change:
    """``change`` plus the Argo CD files it alters (re-rendered after every commit that
    changes anything, as Kuberpult does)."""
    if change.paths:
        change.paths += argocd.update_files(tree, settings.argocd)
    return change


def releases_dir(application: str) -> Parts:
    """Where an application's releases live."""
    return ("applications", application, "releases")


def release_versions(tree: SafeTree, application: str) -> list[int]:
    """The release numbers in the repository, ascending (non-numeric names are ignored)."""
    names = tree.list(releases_dir(application))
    return sorted(int(n) for n in names if n.isascii() and n.isdigit())


def deployment_dir(environment: str, application: str) -> Parts:
    """Where an application's deployment in an environment lives."""
    return ("environments", environment, "applications", application)


def deployed_version(tree: SafeTree, environment: str, application: str) -> int | None:
    """The version an environment runs, read from its ``version`` symlink."""
    target = tree.read_symlink((*deployment_dir(environment, application), "version"))
    if target is None:
        return None
    last = target.rstrip("/").rsplit("/", 1)[-1]
    return int(last) if last.isascii() and last.isdigit() else None


def go_time(created_at: str) -> str:
    """An RFC 3339 UTC time in Go's ``time.Time.String()`` form, as ``deployed_at_utc`` holds."""
    moment = datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def cleanup_candidates(
    tree: SafeTree, application: str, versions: list[int], limit: int
) -> list[int]:
    """Kuberpult's rule: keep ``limit - 1`` releases older than the oldest deployed one, plus
    every newer one; the rest are candidates for removal."""
    if not versions:
        return []
    deployed = [
        v
        for env in tree.list(("environments",))
        if tree.is_dir(("environments", env))
        and (v := deployed_version(tree, env, application)) is not None
        and v in versions
    ]
    oldest = min(deployed) if deployed else versions[-1]
    position = versions.index(oldest)
    if position < limit - 1:
        return []
    return versions[: position - (limit - 1)]


def find_lock(
    tree: SafeTree, environment: str, application: str, team: str | None
) -> tuple[str, str] | None:
    """The first lock that blocks deploying ``application`` to ``environment``: (type, message)."""
    places: list[tuple[str, Parts]] = [
        ("environment", ("environments", environment, "locks")),
        ("application", (*deployment_dir(environment, application), "locks")),
    ]
    if team:
        places.append(("team", ("environments", environment, "teams", team, "locks")))
    for lock_type, directory in places:
        for lock_id in tree.list(directory):
            if tree.is_dir((*directory, lock_id)):
                message = tree.read((*directory, lock_id, "message")) or b""
                return lock_type, message.decode("utf-8", "replace")
    return None


def apply_release(tree: SafeTree, release: StoredRelease, settings: LayoutSettings) -> Change:
    """Write ``release`` and everything that follows from it; return what changed.

    :raises ReleaseTooOld: the release would be cleaned up at once (nothing is written).
    :raises ApplyError: the tree cannot be written safely, or holds an unparsable config.
    """
    app, version = release.application, release.version
    existing = release_versions(tree, app)
    versions = sorted({*existing, version})
    if version not in existing and version != versions[-1]:
        limit = settings.release_versions_limit
        if version in cleanup_candidates(tree, app, versions, limit):
            raise ReleaseTooOld(
                f"release {version} of {app!r} is older than the {limit} releases the "
                "repository keeps; it would be removed at once"
            )
    if version in existing:
        _refuse_another_release(tree, release)
    change = Change(messages=[f'created version {version} of "{app}"'])
    change.paths += _write_release_files(tree, release)
    commit_data = CommitData(tree, release.created_at, release.id)
    commit = release.source_commit_id if settings.write_commit_data else None
    if commit:
        commit_data.new_release(
            commit,
            release.previous_commit_id,
            app,
            release.source_message,
            sorted(release.manifests),
        )

    team = release.team or _read_text(tree, ("applications", app, "team"))
    deployed = False
    if version == versions[-1]:
        for env in sorted(release.manifests):
            if not read_config(tree, env).upstream_latest:
                continue
            lock = find_lock(tree, env, app, team)
            if lock is not None:
                change.paths += changed(_queue(tree, release, env))
                change.messages.append(f'Queued version {version} of app "{app}" in env "{env}"')
                if commit:
                    fields = {
                        "application": app,
                        "environment": env,
                        "lock_message": lock[1],
                        "lock_type": lock[0],
                    }
                    commit_data.event(commit, "lock-prevented-deployment", fields)
                continue
            replaced = deployed_version(tree, env, app)
            change.paths += _deploy(tree, release, env)
            change.messages.append(f'deployed version {version} of "{app}" to "{env}"')
            deployed = True
            if commit:
                commit_data.event(commit, "deployment", {"application": app, "environment": env})
                _record_replacement(tree, commit_data, app, env, replaced, version, commit)
    if deployed:
        _clean_up(tree, app, settings, change)
    change.paths += commit_data.paths
    return change


class ReleaseExistsInRepository(ApplyError):
    """The repository holds another release under this number (written by someone else)."""

    code = EXISTS_IN_REPOSITORY


def release_trailer(release: StoredRelease) -> str:
    """The ``Release-Id`` trailer of a release's commit: names the store row, so recovery
    finds a release on the remote however later commits changed the files around it."""
    name = f"kuberpult-lite:{release.application}:{release.version}:{release.created_at}"
    return f"Release-Id: {uuid.uuid5(uuid.NAMESPACE_URL, f'{name}:{release.id}')}"


def release_files_match(tree: SafeTree, release: StoredRelease) -> bool:
    """Whether the tree holds exactly this release's manifests under its number."""
    directory = (*releases_dir(release.application), str(release.version))
    written = set(tree.list((*directory, "environments")))
    return written == set(release.manifests) and all(
        tree.read((*directory, "environments", env, "manifests.yaml")) == content
        for env, content in release.manifests.items()
    )


def _refuse_another_release(tree: SafeTree, release: StoredRelease) -> None:
    """Writing a release over one that differs would rewrite history Argo CD may have
    deployed; the same files again (a re-apply after a crash) are fine."""
    if not release_files_match(tree, release):
        raise ReleaseExistsInRepository(
            f"version {release.version} of {release.application!r} already exists in the "
            "manifest repository with other manifests (written by someone else); it is not "
            "overwritten. Send the release again: it gets the next free version, or 200/409 "
            "for the same version"
        )


def application_team(tree: SafeTree, application: str) -> str | None:
    """The team the repository says owns ``application``."""
    return _read_text(tree, ("applications", application, "team"))


def _read_text(tree: SafeTree, parts: Parts) -> str | None:
    content = tree.read(parts)
    return content.decode("utf-8", "replace").strip() if content else None


def _write_release_files(tree: SafeTree, release: StoredRelease) -> list[str]:
    app = ("applications", release.application)
    directory = (*releases_dir(release.application), str(release.version))
    paths: list[str | None] = []
    if release.team:
        paths.append(tree.write((*app, "team"), release.team.encode()))
    for name in ("source_commit_id", "source_author", "source_message", "display_version"):
        value = getattr(release, name)
        if value is not None:
            paths.append(tree.write((*directory, name), value.encode()))
    paths.append(tree.write((*directory, "created_at"), release.created_at.encode()))
    for env, content in sorted(release.manifests.items()):
        paths.append(tree.write((*directory, "environments", env, "manifests.yaml"), content))
    return changed(*paths)


def _queue(tree: SafeTree, release: StoredRelease, env: str) -> str | None:
    return queue_version(tree, release.application, release.version, env)


def queue_version(tree: SafeTree, application: str, version: int, env: str) -> str | None:
    """Record ``version`` as waiting behind a lock in ``env`` (Kuberpult's ``queued_version``)."""
    where = (*deployment_dir(env, application), "queued_version")
    return tree.symlink(where, (*releases_dir(application), str(version)))


class MissingRelease(ApplyError):
    """The version to deploy has no manifest for the environment in the repository."""

    code = "unknown_release"


def release_manifest(tree: SafeTree, application: str, version: int, env: str) -> bytes | None:
    """The manifest release ``version`` of ``application`` holds for ``env``, if any."""
    directory = (*releases_dir(application), str(version), "environments", env)
    return tree.read((*directory, "manifests.yaml"))


def deploy_version(
    tree: SafeTree,
    application: str,
    version: int,
    env: str,
    author: tuple[str, str],
    created_at: str,
) -> list[str]:
    """Deploy a release already in the repository (a release train, a manual deploy).

    :raises MissingRelease: the release has no manifest for ``env``; nothing is written.
    """
    manifest = release_manifest(tree, application, version, env)
    if manifest is None:
        raise MissingRelease(
            f"deployment failed: release {version} of {application!r} has no manifest for "
            f"environment {env!r} in the manifest repository"
        )
    return _write_deployment(tree, application, version, env, manifest, author, created_at)


def _deploy(tree: SafeTree, release: StoredRelease, env: str) -> list[str]:
    author = (release.author_name, release.author_email)
    return _write_deployment(
        tree,
        release.application,
        release.version,
        env,
        release.manifests[env],
        author,
        release.created_at,
    )


def _write_deployment(
    tree: SafeTree,
    application: str,
    version: int,
    env: str,
    manifest: bytes,
    author: tuple[str, str],
    created_at: str,
) -> list[str]:
    base = deployment_dir(env, application)
    return changed(
        tree.symlink((*base, "version"), (*releases_dir(application), str(version))),
        # Kuberpult stores an empty manifest as one space.
        tree.write((*base, "manifests", "manifests.yaml"), manifest or b" "),
        tree.write((*base, "deployed_by"), author[0].encode()),
        tree.write((*base, "deployed_by_email"), author[1].encode()),
        tree.write((*base, "deployed_at_utc"), go_time(created_at).encode()),
        tree.remove((*base, "queued_version")),
    )


def clean_up(tree: SafeTree, app: str, settings: LayoutSettings, change: Change) -> None:
    """Kuberpult's cleanup after a deployment: old releases removed, their lines added."""
    _clean_up(tree, app, settings, change)


def _record_replacement(
    tree: SafeTree,
    commit_data: CommitData,
    app: str,
    env: str,
    replaced: int | None,
    version: int,
    commit: str,
) -> None:
    """A ``replaced-by`` event under the commit of the version this deployment replaced."""
    if replaced is None or replaced == version:
        return
    old_commit = _read_text(tree, (*releases_dir(app), str(replaced), "source_commit_id"))
    if old_commit and len(old_commit) == 40:
        fields = {"application": app, "environment": env, "commit": commit}
        commit_data.event(old_commit, "replaced-by", fields)


def _clean_up(tree: SafeTree, app: str, settings: LayoutSettings, change: Change) -> None:
    versions = release_versions(tree, app)
    for old in cleanup_candidates(tree, app, versions, settings.release_versions_limit):
        directory = (*releases_dir(app), str(old))
        old_commit = _read_text(tree, (*directory, "source_commit_id"))
        if settings.write_commit_data and old_commit and len(old_commit) == 40:
            change.paths += forget_application(tree, old_commit, app)
        change.paths += changed(tree.remove(directory))
        change.messages.append(f"removed version {old} of app {app} as cleanup")
        change.removed_versions.append(old)
