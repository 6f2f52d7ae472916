"""kuberpult-lite's release server: a Kuberpult-compatible ``/release`` backed by SQLite and git."""

from server.app import create_app as create_app
