"""The delivery tests' fixtures: a real broker (memory:// and embedded://) and app."""

from tests.workers.test_delivery import app, broker  # noqa: F401 - fixtures
