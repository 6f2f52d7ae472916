"""``kuberpult-server``: start the release server under gunicorn."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from server.config import Config
from server.config import ConfigError


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
        from server.app import create_app

        return create_app(self.kuberpult_config)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read the configuration and serve."""
    parser = argparse.ArgumentParser(
        prog="kuberpult-server", description="Kuberpult-compatible release server."
    )
    parser.add_argument("--bind", default="127.0.0.1:8081", help="HOST:PORT (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--threads", type=int, default=8, help="threads per worker (default %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    try:
        config = Config.from_env()
    except ConfigError as error:
        print(f"kuberpult-server: configuration error: {error}", file=sys.stderr)
        return 2
    config.data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"kuberpult-server: serving on http://{args.bind}, data in {config.data_dir}, "
        f"manifest repository {config.git_url} (branch {config.git_branch})",
        file=sys.stderr,
    )
    options = {
        "bind": args.bind,
        "workers": args.workers,
        "worker_class": "gthread",
        "threads": args.threads,
        # A request may wait for the repo lock and then push; the worker must outlive both.
        "timeout": int(config.git_push_timeout * 2 + 30),
        "graceful_timeout": int(config.git_push_timeout + 5),
        "accesslog": "-",
        # gunicorn 23+ opens a control socket in ~/.gunicorn by default; several servers on
        # one machine (tests, benchmarks) would fight over it and nothing here uses it.
        "control_socket_disable": True,
    }
    _GunicornServer(config, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
