"""The SQLite schema and its migrations, numbered by ``PRAGMA user_version``.

Every migration is plain SQL run on the connection inside the caller's ``BEGIN IMMEDIATE``.
sqlite-utils' table helpers are not used: in 3.x ``Table.create`` commits on its own, ending
that transaction half way through a migration. The statements are written out as they stood
when each version shipped (for v1 to v3 what sqlite-utils 4 generated) and never change.
"""

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
        db.conn.execute(
            'CREATE TABLE "environments" (\n'
            '   "name" TEXT PRIMARY KEY,\n'
            '   "upstream_latest" INTEGER,\n'
            '   "environment_group" TEXT,\n'
            '   "updated_at" TEXT\n'
            ")"
        )
    if current < 3:
        # v3: the repository's current state as the read API shows it.
        db.conn.execute(
            'CREATE TABLE "repository_views" (\n'
            '   "name" TEXT PRIMARY KEY,\n'
            '   "json" TEXT,\n'
            '   "updated_at" TEXT\n'
            ")"
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
    for statement in _V1:
        db.conn.execute(statement)


_V1 = (
    'CREATE TABLE "applications" (\n'
    '   "name" TEXT PRIMARY KEY,\n'
    '   "team" TEXT,\n'
    '   "created_at" TEXT NOT NULL\n'
    ")",
    'CREATE TABLE "releases" (\n'
    '   "id" INTEGER PRIMARY KEY,\n'
    '   "application" TEXT NOT NULL REFERENCES "applications"("name"),\n'
    '   "version" INTEGER NOT NULL,\n'
    # the RELEASE_TEXT_FIELDS of v1
    '   "source_commit_id" TEXT,\n'
    '   "previous_commit_id" TEXT,\n'
    '   "source_author" TEXT,\n'
    '   "source_message" TEXT,\n'
    '   "display_version" TEXT,\n'
    '   "team" TEXT,\n'
    '   "ci_link" TEXT,\n'
    '   "author_name" TEXT NOT NULL,\n'
    '   "author_email" TEXT NOT NULL,\n'
    '   "created_at" TEXT NOT NULL,\n'
    '   "state" TEXT NOT NULL,\n'
    '   "error" TEXT,\n'
    '   "error_code" TEXT,\n'
    '   "commit_sha" TEXT,\n'
    '   "pushed_at" TEXT,\n'
    '   "removed_from_repo_at" TEXT\n'
    ")",
    'CREATE UNIQUE INDEX "idx_releases_application_version"\n'
    '    ON "releases" ("application", "version")',
    'CREATE INDEX "idx_releases_state_id"\n    ON "releases" ("state", "id")',
    'CREATE TABLE "release_manifests" (\n'
    '   "release_id" INTEGER REFERENCES "releases"("id"),\n'
    '   "environment" TEXT,\n'
    '   "content" BLOB NOT NULL,\n'
    '   PRIMARY KEY ("release_id", "environment")\n'
    ")",
)
