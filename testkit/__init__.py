"""Helpers that the tests and the benchmarks share on purpose: real bare git remotes and
real ``kuberpult-server`` processes (no fixtures here; those stay in ``tests/conftest.py``)."""
