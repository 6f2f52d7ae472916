"""``kuberpult-server``: start the release server under gunicorn.

Over 250 lines: two subcommands' arguments, the start-up checks and gunicorn's wiring; each part is
short and they share the configuration handling.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import shutil
import sys
import time
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.util import parse_address

from server.auth import access
from server.auth.gate import Auth
from server.config import Config
from server.config import ConfigError
from server.config import redact
from server.errors import KuberpultError
from server.http import logs

# Seconds a starting server waits for a database that does not answer yet.
DATABASE_WAIT = 20.0


SUBCOMMANDS = """\
subcommands:
  kuberpult-server [--bind HOST:PORT] [--workers N] [--threads N]   serve (the default)
  kuberpult-server create-environment NAME [--upstream-latest | --upstream ENV] [--group G]
  kuberpult-server migrate     create or upgrade the database schema, then exit
  kuberpult-server config      print the effective configuration (secrets redacted)

Configuration comes from KUBERPULT_* environment variables only: `kuberpult-server config
--reference` lists them all with their defaults (the README's "Configuration" has the same
table). An unknown KUBERPULT_* variable stops the server.
"""


class _GunicornServer(BaseApplication):  # type: ignore[misc]
    """Runs ``create_app(config)`` in each worker; the config is built once, in the master."""

    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self.kuberpult_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from server.http.app import create_app

        logs.configure()  # in the worker, after gunicorn set up its own loggers
        _return_big_buffers_to_the_system()
        return create_app(self.kuberpult_config)


def _prepare_database(config: Config, wait: float = 0.0) -> None:
    """Create or migrate the database once, before any worker opens it; a database that does
    not answer yet (replicas often start before it) is asked again for ``wait`` seconds.

    :raises Unavailable: it still does not answer.
    """
    from server.errors import Unavailable
    from server.store import open_store

    deadline = time.monotonic() + wait
    while True:
        try:
            store = open_store(config, pooled=False)
            try:
                store.migrate()
            finally:
                store.close()
            return
        except Unavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2.0)


def _remote_at_start(config: Config) -> str:
    """Whether the remote answers (``git ls-remote``), for the start-up line. What it finds is
    also where /readyz starts from: a view left by an earlier run must not make this one ready.
    """
    from server.repo.reachability import probe_remote
    from server.repo.reachability import remote_view
    from server.repo.reachability import remote_view_name
    from server.store import open_store

    if config.embedded_remote and not (config.data_dir / "manifests.git" / "HEAD").exists():
        error: str | None = "the embedded remote is created when the first worker starts"
        said = "embedded remote, created on first start"
    else:
        error = probe_remote(config, min(config.git_push_timeout, 10.0))
        said = "remote reachable" if error is None else f"remote NOT reachable: {redact(error)}"
    store = open_store(config, pooled=False)
    try:
        store.save_view(remote_view_name(config), remote_view(error))
    finally:
        store.close()
    return said


def _child_exit(_server: object, worker: Any) -> None:
    from server import metrics

    metrics.worker_exited(worker.pid)


def _return_big_buffers_to_the_system() -> None:
    """Make glibc serve large blocks (a 10 MB manifest) with mmap and give them back when
    freed. Left dynamic, its threshold grows after the first free and every request thread's
    arena then keeps its own multi-megabyte copies: RSS grows with the thread count."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    m_mmap_threshold, m_arena_max = -3, -8
    libc.mallopt(m_mmap_threshold, 256 * 1024)
    libc.mallopt(m_arena_max, 2)


def main(argv: list[str] | None = None) -> int:
    """``kuberpult-server [serve options]``, ``kuberpult-server create-environment ...`` or
    ``kuberpult-server migrate``."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "create-environment":
        return create_environment(args[1:])
    if args and args[0] == "migrate":
        return migrate(args[1:])
    if args and args[0] == "config":
        return show_config(args[1:])
    return serve(args)


def show_config(argv: list[str]) -> int:
    """Print the effective configuration (secrets redacted), or the README's table."""
    parser = argparse.ArgumentParser(
        prog="kuberpult-server config",
        description="Print every setting the server would use now, read from the environment "
        "as at start-up, with passwords and tokens in URLs blanked.",
    )
    parser.add_argument(
        "--reference", action="store_true", help="print the table of every variable instead"
    )
    args = parser.parse_args(argv)
    from server import variables

    if args.reference:
        print(variables.reference_table(), end="")
        return 0
    config = _config()
    if config is None:
        return 2
    for name, value in variables.effective(config):
        print(f"{name}={value}")
    return 0


def migrate(argv: list[str]) -> int:
    """Create or upgrade the database schema, then exit (serving does it too, at start)."""
    parser = argparse.ArgumentParser(
        prog="kuberpult-server migrate",
        description="Create or upgrade the database schema (KUBERPULT_DATABASE_URL, else the "
        "SQLite file in KUBERPULT_DATA_DIR) and exit. Safe to run while replicas serve.",
    )
    parser.parse_args(argv)
    config = _config()
    if config is None:
        return 2
    from server.store import schema

    config.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _prepare_database(config)
    except KuberpultError as error:
        print(f"kuberpult-server: {redact(error.message)}", file=sys.stderr)
        return 1
    print(f"{config.database_for_display}: schema version {schema.SCHEMA_VERSION}")
    return 0


def _config() -> Config | None:
    try:
        return Config.from_env()
    except ConfigError as error:
        print(f"kuberpult-server: configuration error: {error}", file=sys.stderr)
        return None


def create_environment(argv: list[str]) -> int:
    """Write ``environments/<name>/config.json`` to the manifest repository and push it."""
    parser = argparse.ArgumentParser(
        prog="kuberpult-server create-environment",
        description="Create or change an environment in the manifest repository.",
    )
    parser.add_argument("name")
    upstream = parser.add_mutually_exclusive_group()
    upstream.add_argument(
        "--upstream-latest", action="store_true", help="deploy every new latest release here"
    )
    upstream.add_argument("--upstream", metavar="ENV", help="release trains come from ENV")
    parser.add_argument("--group", metavar="G", help="environment group (default: the name)")
    args = parser.parse_args(argv)
    config = _config()
    if config is None:
        return 2
    from server.release.edits import RepositoryEdits
    from server.repo.exporter import Exporter
    from server.store import open_store

    config.data_dir.mkdir(parents=True, exist_ok=True)
    _prepare_database(config)
    exporter = Exporter(config)
    store = open_store(config, pooled=False)
    try:
        exporter.prepare(store)
        sha = RepositoryEdits(config, exporter, store).create_environment(
            args.name,
            upstream_latest=args.upstream_latest,
            upstream=args.upstream,
            group=args.group,
            author=(config.git_author_name, config.git_author_email),
        )
    except KuberpultError as error:
        print(f"kuberpult-server: {redact(error.message)}", file=sys.stderr)
        return 2 if error.status == 400 else 1
    finally:
        store.close()
    where = f"in commit {sha}" if sha else "(unchanged)"
    print(f"environment {args.name!r} written to {config.git_url_for_display} {where}")
    return 0


def serve(argv: list[str]) -> int:
    """Read the configuration and serve under gunicorn."""
    parser = argparse.ArgumentParser(
        prog="kuberpult-server",
        description="Kuberpult-compatible release server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=SUBCOMMANDS,
    )
    parser.add_argument("--bind", default="127.0.0.1:8081", help="HOST:PORT (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--threads", type=int, default=32, help="threads per worker (default %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    config = _config()
    if config is None:
        return 2
    refusal = _unprotected_bind(args.bind, config)
    if refusal:
        print(f"kuberpult-server: {refusal}", file=sys.stderr)
        return 2
    try:
        Auth(config)  # a bad keyring or policy file stops us here, once, with its message
    except ConfigError as error:
        print(f"kuberpult-server: configuration error: {error}", file=sys.stderr)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _prepare_database(config, wait=DATABASE_WAIT)
    except KuberpultError as error:
        print(f"kuberpult-server: {redact(error.message)}", file=sys.stderr)
        return 1
    print(
        f"kuberpult-server: serving on http://{args.bind}, data in {config.data_dir}, "
        f"database {config.database_for_display}, "
        f"manifest repository {config.git_url_for_display}"
        f"{' (the embedded default: KUBERPULT_GIT_URL is unset)' if config.embedded_remote else ''}"
        f" (branch {config.git_branch}): "
        f"{_remote_at_start(config)}\n"
        f"kuberpult-server: authentication: {access.summary(config)}",
        file=sys.stderr,
    )
    # Every worker writes its metric samples here; /metrics adds them up. Fresh each start.
    metrics_dir = config.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    options = {
        "bind": args.bind,
        "workers": args.workers,
        "worker_class": "gthread",
        "threads": args.threads,
        # A request may wait for the repo lock and then push; the worker must outlive both.
        "timeout": int(config.git_push_timeout * 2 + 30),
        "graceful_timeout": int(config.git_push_timeout + 5),
        # Requests are logged as JSON lines by the app itself (server.logs).
        "accesslog": None,
        # gunicorn 23+ opens a control socket in ~/.gunicorn by default; several servers on
        # one machine (tests, benchmarks) would fight over it and nothing here uses it.
        "control_socket_disable": True,
        "child_exit": _child_exit,
    }
    _GunicornServer(config, options).run()
    return 0


def bind_host(bind: str) -> str | None:
    """The host gunicorn will listen on for ``--bind`` (None for a unix socket).

    Parsed by gunicorn's own parser, so the check and the listener cannot disagree (a
    hand-written split reads ``0:0:0:0:0:0:0:1:8081`` as ``::1``; gunicorn as ``0``). An
    inherited ``fd://`` socket could listen anywhere: it counts as no host we can vouch for.
    """
    try:
        address = parse_address(bind)
    except (RuntimeError, ValueError):
        return ""  # gunicorn will refuse it too; never loopback
    if isinstance(address, str):
        return None  # a unix socket: only this machine reaches it
    if isinstance(address, int):
        return ""
    return str(address[0])


def is_loopback(host: str) -> bool:
    """Exactly ``localhost`` or a loopback address (127.0.0.0/8, ::1); not a name that
    merely starts like one (``localhost.evil.example``, ``127.0.0.1.nip.io``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unprotected_bind(bind: str, config: Config) -> str | None:
    """Why serving on ``bind`` would expose the server without authentication, if it would."""
    host = bind_host(bind)
    if host is None or is_loopback(host) or config.authentication_configured:
        return None
    return (
        f"refusing to listen on {host!r} without authentication (KUBERPULT_API_ENABLE_DESPITE_"
        "NO_AUTH opens the server on loopback only): set KUBERPULT_PGP_KEY_RING_PATH (signed "
        "releases), KUBERPULT_DEX_ENABLED=true or KUBERPULT_GITHUB_OIDC_POLICY_PATH (tokens), or "
        "bind 127.0.0.1"
    )


if __name__ == "__main__":
    sys.exit(main())
