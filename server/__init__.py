"""kuberpult-lite's release server: a Kuberpult-compatible ``/release`` backed by SQLite and git.

The app factory is ``server.app.create_app``. Nothing is imported here on purpose:
``kuberpult-server`` must set ``PROMETHEUS_MULTIPROC_DIR`` before prometheus-client is loaded.
"""
