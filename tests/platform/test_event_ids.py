"""Event ids and times made per request (tether/platform/events/ids.py)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from tether.platform.events import parse_time
from tether.platform.events.ids import POOL_SIZE, new_id, new_ids, now_text


def test_ids_are_distinct_random_version_4_uuids_across_pool_refills() -> None:
    ids = [new_id() for _ in range(POOL_SIZE * 3 + 7)] + list(new_ids(50))
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # the canonical lowercase 8-4-4-4-12 form
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_id()  # the pool is filled: a child that kept it would hand out the same ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, ",".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child = os.read(read, 10_000).decode().split(",")
    os.close(read)
    assert status == 0
    parent = [new_id() for _ in range(10)]
    assert len(child) == 10
    assert not set(child) & set(parent)


def test_the_time_is_rfc_3339_utc_with_microseconds_and_current() -> None:
    before = datetime.now(UTC)
    text = now_text()
    after = datetime.now(UTC)
    assert text.endswith("Z") and len(text) == len("2026-12-07T21:14:46.168842Z")
    parsed = parse_time(text)
    assert before - timedelta(microseconds=1) <= parsed <= after
