"""The Celery baseline of bench/workflows.py: the same trivial tasks as a chord.

The worker is started by the bench as ``celery -A workflows_celery worker`` (with bench/ on
PYTHONPATH); the broker and the result backend are the Redis URL in TETHER_BENCH_CELERY_REDIS,
the same redis-server Tether's Redis backend runs on.
"""

from __future__ import annotations

import os

from celery import Celery

REDIS_URL = os.environ.get("TETHER_BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/1")

app = Celery("tether_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json", result_serializer="json", accept_content=["json"],
)


@app.task(name="bench.add_one")
def add_one(x: int) -> int:
    return x + 1


@app.task(name="bench.total")
def total(values: list[int]) -> int:
    return sum(values)
