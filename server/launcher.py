"""The ``kuberpult-server`` command's entry point: says how to install the server when only
the client was installed (``pip install kuberpult-lite`` is the client; the server is the
``[server]`` extra), instead of a traceback about a missing module."""

from __future__ import annotations

import sys

SERVER_MODULES = ("flask", "gunicorn", "jwt", "gnupg", "sqlite_utils", "psycopg", "yaml")


def main() -> int:
    """Check the server's dependencies are installed, then run ``server.cli``."""
    for name in SERVER_MODULES:
        try:
            __import__(name)
        except ImportError:
            sys.exit(
                f"kuberpult-server: the Python package {name!r} is missing: this is the "
                "client-only install. Install the server with: "
                "pip install 'kuberpult-lite[server]'"
            )
    from server.cli import main as run

    return run()
