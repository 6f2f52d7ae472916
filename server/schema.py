"""The SQLite schema and its migrations, numbered by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite_utils

SCHEMA_VERSION = 5
RELEASE_TEXT_FIELDS = (
    "source_commit_id",
    "previous_commit_id",
    "source_author",
    "source_message",
    "display_version",
    "team",
    "ci_link",
)


def migrate(db: sqlite_utils.Database) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (call inside a write transaction)."""
    current = db.conn.execute("PRAGMA user_version").fetchone()[0]
    if current < 1:
        _create_v1(db)
    if current < 2:
        # v2: a mirror of the environment configs, for checks made before the repo lock.
        db.table("environments").create(
            {
                "name": str,
                "upstream_latest": int,
                "environment_group": str,
                "updated_at": str,
            },
            pk="name",
        )
    if current < 3:
        # v3: the repository's current state as the read API shows it.
        db.table("repository_views").create(
            {"name": str, "json": str, "updated_at": str}, pk="name"
        )
    if current < 4:
        # v4: who asked for the release (a Dex user's name, email and groups), so the exporter
        # can decide DeployRelease on the tree it applies the release to.
        db.conn.execute("alter table releases add column requester text")
    if current < 5:
        # v5: the client's Client-Uuid, so a resend without a version finds its release.
        db.conn.execute("alter table releases add column client_uuid text")
        db.conn.execute(
            "create unique index releases_client_uuid on releases (application, client_uuid) "
            "where client_uuid is not null"
        )
    db.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _create_v1(db: sqlite_utils.Database) -> None:
    """Applications, releases and their manifests."""
    db.table("applications").create(
        {"name": str, "team": str, "created_at": str},
        pk="name",
        not_null={"created_at"},
    )
    db.table("releases").create(
        {
            "id": int,
            "application": str,
            "version": int,
            **{name: str for name in RELEASE_TEXT_FIELDS},
            "author_name": str,
            "author_email": str,
            "created_at": str,
            "state": str,
            "error": str,
            "error_code": str,
            "commit_sha": str,
            "pushed_at": str,
            "removed_from_repo_at": str,
        },
        pk="id",
        not_null={
            "application",
            "version",
            "author_name",
            "author_email",
            "created_at",
            "state",
        },
        foreign_keys=[("application", "applications", "name")],
    )
    db.table("releases").create_index(["application", "version"], unique=True)
    db.table("releases").create_index(["state", "id"])
    db.table("release_manifests").create(
        {"release_id": int, "environment": str, "content": bytes},
        pk=("release_id", "environment"),
        not_null={"content"},
        foreign_keys=[("release_id", "releases", "id")],
    )
