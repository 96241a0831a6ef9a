"""bindings.postgresql (and bindings.postgres) on the machine's PostgreSQL, in a table of its
own."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.bindings.components.yaml_a import build, output
from tests.servers import free_port
from tether.platform.bindings.binding import (
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    OutputBinding,
)
from tether.platform.bindings.components.postgresql import go_duration, rfc3339_nano
from tether.platform.bindings.registry import BindingConfigError

RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


@pytest.fixture
async def sql(postgres_dsn: str) -> AsyncIterator[OutputBinding]:
    built = output("bindings.postgresql", connectionString=postgres_dsn)
    await built.start()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def table(sql: OutputBinding) -> AsyncIterator[str]:
    name = f"binding_a_{uuid.uuid4().hex[:12]}"
    await sql.invoke(BindingRequest("exec", metadata={"sql": (
        f"CREATE TABLE {name} (id int PRIMARY KEY, name text NOT NULL, price numeric,"
        " at timestamptz, doc jsonb, raw bytea)")}))
    try:
        yield name
    finally:
        await sql.invoke(BindingRequest("exec", metadata={"sql": f"DROP TABLE {name}"}))


def params(*values: object) -> str:
    return json.dumps(list(values))


async def test_exec_answers_rows_affected_and_dapr_metadata(sql: OutputBinding,
                                                            table: str) -> None:
    statement = f"INSERT INTO {table} (id, name, price) VALUES ($1, $2, $3), ($4, $5, $6)"
    response = await sql.invoke(BindingRequest("exec", metadata={
        "sql": statement, "params": params(1, "apple", 1.5, 2, "pear", 2)}))
    assert not response.data
    assert response.metadata["rows-affected"] == "2"
    assert response.metadata["operation"] == "exec"
    assert response.metadata["sql"] == statement
    assert RFC3339_NANO.fullmatch(response.metadata["start-time"])
    assert RFC3339_NANO.fullmatch(response.metadata["end-time"])
    assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)|.*m.*s", response.metadata["duration"])
    updated = await sql.invoke(BindingRequest("exec", metadata={
        "sql": f"UPDATE {table} SET name = name || '%' WHERE id > $1", "params": "[0]"}))
    assert updated.metadata["rows-affected"] == "2"


async def test_query_answers_rows_as_arrays(sql: OutputBinding, table: str) -> None:
    await sql.invoke(BindingRequest("exec", metadata={
        "sql": f"INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6)",
        "params": params(1, "apple", "10.25", "2024-05-01T12:30:00.5Z", {"k": [1, 2]},
                         None)}))
    await sql.invoke(BindingRequest("exec", metadata={
        "sql": f"INSERT INTO {table} (id, name, raw) VALUES (2, 'pear', '\\x00ff')"}))
    response = await sql.invoke(BindingRequest("query", metadata={
        "sql": f"SELECT id, name, price, at, doc, raw FROM {table} ORDER BY id"}))
    assert response.data is not None
    assert json.loads(response.data) == [
        [1, "apple", 10.25, "2024-05-01T12:30:00.5Z", {"k": [1, 2]}, None],
        [2, "pear", None, None, None, "AP8="],
    ]
    assert b"10.25" in response.data  # numeric stays an exact JSON number
    assert response.metadata["operation"] == "query"
    assert "rows-affected" not in response.metadata
    empty = await sql.invoke(BindingRequest("query", metadata={
        "sql": f"SELECT id FROM {table} WHERE id = $1", "params": "[99]"}))
    assert empty.data == b"[]"


async def test_sql_errors_are_the_callers_with_the_database_message(
    sql: OutputBinding, table: str
) -> None:
    with pytest.raises(BindingRequestError, match="syntax error"):
        await sql.invoke(BindingRequest("exec", metadata={"sql": "SELEC 1"}))
    await sql.invoke(BindingRequest("exec", metadata={
        "sql": f"INSERT INTO {table} (id, name) VALUES (1, 'a')"}))
    with pytest.raises(BindingRequestError, match="duplicate key"):
        await sql.invoke(BindingRequest("exec", metadata={
            "sql": f"INSERT INTO {table} (id, name) VALUES (1, 'b')"}))
    with pytest.raises(BindingRequestError, match="does not exist"):
        await sql.invoke(BindingRequest("query", metadata={"sql": "SELECT * FROM no_such_t"}))


async def test_request_metadata_errors(sql: OutputBinding) -> None:
    with pytest.raises(BindingRequestError, match="metadata sql is required"):
        await sql.invoke(BindingRequest("exec"))
    with pytest.raises(BindingRequestError, match="params"):
        await sql.invoke(BindingRequest("query", metadata={"sql": "SELECT $1::int",
                                                           "params": "{\"a\": 1}"}))
    with pytest.raises(BindingRequestError, match="params"):
        await sql.invoke(BindingRequest("query", metadata={"sql": "SELECT 1",
                                                           "params": "[1,"}))
    with pytest.raises(BindingRequestError, match="parameters"):  # two placeholders, one value
        await sql.invoke(BindingRequest("query", metadata={"sql": "SELECT $1::int + $2::int",
                                                           "params": "[1]"}))
    with pytest.raises(BindingRequestError, match="invalid input syntax"):
        await sql.invoke(BindingRequest("query", metadata={"sql": "SELECT $1::int",
                                                           "params": '["one"]'}))
    # the connection is still usable after those
    assert (await sql.invoke(BindingRequest("query", metadata={"sql": "SELECT 2"}))).data \
        == b"[[2]]"


async def test_close_operation_closes_the_binding(postgres_dsn: str) -> None:
    built = output("bindings.postgres", connectionString=postgres_dsn)
    await built.start()
    ok = await built.invoke(BindingRequest("query", metadata={"sql": "SELECT 1"}))
    assert ok.data == b"[[1]]"
    await built.invoke(BindingRequest("close"))
    with pytest.raises(BindingFailedError, match="closed"):
        await built.invoke(BindingRequest("query", metadata={"sql": "SELECT 1"}))
    await built.invoke(BindingRequest("close"))  # closing again is fine, as in Dapr
    await built.close()


async def test_unreachable_server_fails_at_start() -> None:
    built = output("bindings.postgresql",
                   connectionString=f"host=127.0.0.1 port={free_port()} user=postgres",
                   timeout="2s")
    with pytest.raises(BindingFailedError, match="unable to connect"):
        await built.start()
    await built.close()


def test_metadata_errors_name_the_field() -> None:
    with pytest.raises(BindingConfigError, match="connectionString is required"):
        build("bindings.postgresql", other="x")
    with pytest.raises(BindingConfigError, match="connectionString cannot be parsed"):
        build("bindings.postgresql", connectionString="host=x port")
    with pytest.raises(BindingConfigError, match="timeout"):
        build("bindings.postgresql", connectionString="host=x", timeout="soon")
    # Dapr's older name
    assert build("bindings.postgres", url="postgres://u@h/db").output is not None


def test_go_formats() -> None:
    assert go_duration(0) == "0s"
    assert go_duration(1_500_000) == "1.5ms"
    assert go_duration(2_000) == "2µs"
    assert go_duration(999) == "999ns"
    assert go_duration(90_000_000_000) == "1m30s"
    assert go_duration(3_600_000_000_000) == "1h0m0s"
    assert go_duration(2_250_000_000) == "2.25s"
    assert rfc3339_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
