"""The store: the source of truth for releases. Callers import the interface from here, never
a backend module, so the backend can change in one place."""

from server.store.sqlite import Store
from server.store.sqlite import utc_now

__all__ = ["Store", "utc_now"]
