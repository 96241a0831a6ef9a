"""read_json: one way to read a request body as JSON, with one error for every bad body."""

from __future__ import annotations

import pytest

from tether.platform.json_body import JsonBodyError, read_json


def test_reads_json_of_the_kind_asked_for() -> None:
    assert read_json(b'{"a": [1]}', dict) == {"a": [1]}
    assert read_json(b"[1, 2]", list) == [1, 2]
    assert read_json(b"  ", dict, empty={}) == {}


@pytest.mark.parametrize(
    ("body", "kind", "problem"),
    [
        (b"{nope", None, "the body is not valid JSON"),
        (b"\xff\xfe", None, "the body is not valid JSON"),
        (b"", None, "the body is not valid JSON"),
        (b"[1]", dict, "the body must be a JSON object"),
        (b"{}", list, "the body must be a JSON array"),
        # deeper than the parser follows: an error of the body, not a crash of the server
        (b"[" * 100_000 + b"]" * 100_000, None, "the body is nested too deeply"),
    ],
)
def test_every_bad_body_is_one_error(body: bytes, kind: type | None, problem: str) -> None:
    with pytest.raises(JsonBodyError, match=problem):
        read_json(body, kind)
