from tests.servers import (  # noqa: F401 - session fixtures
    kafka_address,
    postgres_dsn,
    redis_address,
)
