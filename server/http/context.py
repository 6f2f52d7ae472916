"""Per-app and per-request objects for the views: configuration, auth, exporter, SQLite on g."""

from __future__ import annotations

from flask import current_app
from flask import g

from server.auth.gate import Auth
from server.config import Config
from server.repo.exporter import Exporter
from server.store import Store
from server.store import open_store


def get_config() -> Config:
    """The configuration the app was built with."""
    config: Config = current_app.extensions["kuberpult.config"]
    return config


def get_auth() -> Auth:
    """Signatures, token issuers and policies, built at startup."""
    auth: Auth = current_app.extensions["kuberpult.auth"]
    return auth


def get_exporter() -> Exporter:
    """The app's exporter (it holds no state but the configuration)."""
    exporter: Exporter = current_app.extensions["kuberpult.exporter"]
    return exporter


def get_store() -> Store:
    """The request's SQLite connection, opened on first use and closed on teardown."""
    if "store" not in g:
        g.store = open_store(get_config())
    store: Store = g.store
    return store


def close_store(_error: BaseException | None = None) -> None:
    """Close the request's SQLite connection, if one was opened."""
    store: Store | None = g.pop("store", None)
    if store is not None:
        store.close()
