from collections.abc import Iterator

import pytest

from tests.bindings.storage_servers import run_azurite, run_moto
from tests.servers import unavailable


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://host:port`` of a moto S3 server for this test session."""
    try:
        with run_moto() as endpoint:
            yield endpoint
    except (RuntimeError, TimeoutError) as exc:
        unavailable(f"could not start moto_server: {exc}")


@pytest.fixture(scope="session")
def azurite_endpoint() -> Iterator[str]:
    """``http://host:port`` of an Azurite blob service for this test session."""
    try:
        with run_azurite() as endpoint:
            yield endpoint
    except (RuntimeError, TimeoutError) as exc:
        unavailable(f"could not start azurite: {exc}")
