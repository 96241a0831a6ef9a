from tests.servers import kafka_address, redis_address  # noqa: F401 - session fixtures
