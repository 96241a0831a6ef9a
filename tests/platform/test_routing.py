"""Topic routing: Dapr's rule order, default and no-match semantics over CEL expressions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from tether.platform.components import RouteRule
from tether.platform.events import CloudEvent
from tether.platform.pubsub.routing import Route, RouteEvaluationError, RouteTable, RoutingError
from tether.platform.pubsub.routing.activation import activation
from tether.platform.pubsub.routing.references import Needs, needs_of


def event(type: str = "com.example.order.created", data: Any = None, **kw: Any) -> CloudEvent:
    return CloudEvent(type=type, source=kw.pop("source", "orders/eu-1"), data=data, **kw)


def route(match: str, evt: CloudEvent, **kw: Any) -> str | None:
    """The path a one-rule table gives: "/hit" when ``match`` is true."""
    return RouteTable.compile([Route(match, "/hit")], **kw).path_for(evt)


# --- order, default, no match ------------------------------------------------------------
def test_first_matching_rule_wins_in_order() -> None:
    table = RouteTable.compile(
        [
            Route('event.type == "other"', "/other"),
            Route('event.type.startsWith("com.example")', "/first"),
            Route('event.type == "com.example.order.created"', "/second"),
        ],
        default="/default",
    )
    assert table.path_for(event()) == "/first"
    assert table.path_for(event(type="other")) == "/other"


def test_default_when_no_rule_matches() -> None:
    table = RouteTable.compile([Route('event.type == "x"', "/x")], default="/products")
    assert table.path_for(event()) == "/products"


def test_no_match_and_no_default_is_none() -> None:
    table = RouteTable.compile([Route('event.type == "x"', "/x")])
    assert table.path_for(event()) is None
    assert table.path_for(event(type="x")) == "/x"


def test_default_only_and_empty_table() -> None:
    assert RouteTable.compile([], default="/all").path_for(event()) == "/all"
    assert RouteTable.compile([]).path_for(event()) is None


@pytest.mark.parametrize("match", [None, "", "   "])
def test_empty_match_is_a_catch_all_at_its_position(match: str | None) -> None:
    table = RouteTable.compile(
        [Route('event.type == "x"', "/x"), Route(match, "/all"), Route("true", "/never")],
        default="/default",
    )
    assert table.path_for(event(type="x")) == "/x"
    assert table.path_for(event()) == "/all"


def test_accepts_components_route_rules() -> None:
    table = RouteTable.compile([RouteRule('event.type == "a"', "/a")], "/d")
    assert table.path_for(event(type="a")) == "/a"
    assert table.rules == (Route('event.type == "a"', "/a"),)


# --- attributes, extensions, data --------------------------------------------------------
def test_context_attributes() -> None:
    evt = event(
        id="e-1",
        subject="invoice-7.pdf",
        time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        dataschema="https://schemas.example.com/order",
        data={"a": 1},
    )
    assert route('event.id == "e-1" && event.source == "orders/eu-1"', evt) == "/hit"
    assert route('event.specversion == "1.0"', evt) == "/hit"
    assert route('event.subject.endsWith(".pdf")', evt) == "/hit"
    assert route('event.time == "2024-05-01T12:00:00Z"', evt) == "/hit"
    assert route('timestamp(event.time) > timestamp("2024-01-01T00:00:00Z")', evt) == "/hit"
    assert route('event.datacontenttype == "application/json"', evt) == "/hit"
    assert route('event.dataschema.contains("schemas")', evt) == "/hit"


def test_extensions() -> None:
    evt = event(extensions={"partitionkey": "k-1", "topic": "orders", "tenant": "acme"})
    assert route('event.partitionkey == "k-1" && event.topic == "orders"', evt) == "/hit"
    assert route('event.tenant in ["acme", "globex"]', evt) == "/hit"
    # extensions travel as strings, so an integer extension compares as a string
    assert route('event.priority == "5"', event(extensions={"priority": 5})) == "/hit"


def test_nested_data_fields() -> None:
    evt = event(data={"customer": {"address": {"country": "DE"}}, "items": [{"sku": "a"}]})
    assert route('event.data.customer.address.country == "DE"', evt) == "/hit"
    assert route('event.data.items[0].sku == "a"', evt) == "/hit"
    assert route('event.data.items.exists(i, i.sku == "a")', evt) == "/hit"
    assert route('event.data["customer"]["address"].country != "FR"', evt) == "/hit"
    assert route("size(event.data) == 2 && event.data.items.size() == 1", evt) == "/hit"


@pytest.mark.parametrize("amount", [150, 150.0, 120.5])
def test_numbers_compare_across_int_and_double(amount: float) -> None:
    evt = event(data={"amount": amount})
    assert route("event.data.amount > 100", evt) == "/hit"
    assert route("event.data.amount > 100.0", evt) == "/hit"
    assert route("int(event.data.amount) > 100", evt) == "/hit"
    assert route("event.data.amount > 1000", evt) is None


def test_json_numbers_are_doubles_as_in_dapr() -> None:
    # Go's encoding/json gives Dapr float64 for every JSON number: double arithmetic works,
    # int arithmetic needs int(), and equality with an int literal still holds
    evt = event(data={"amount": 150, "ok": True, "items": [1, 2]})
    assert route("event.data.amount * 1.5 == 225.0", evt) == "/hit"
    assert route("int(event.data.amount) + 1 == 151", evt) == "/hit"
    assert route("event.data.amount == 150", evt) == "/hit"
    assert route("event.data.ok == true && event.data.items[1] == 2.0", evt) == "/hit"
    with pytest.raises(RouteEvaluationError, match=r"(?i)no matching overload"):
        route("event.data.amount + 1 == 151", evt)


def test_string_functions() -> None:
    evt = event(type="com.example.order.created.v2")
    assert route('event.type.startsWith("com.example.")', evt) == "/hit"
    assert route('event.type.endsWith(".v2")', evt) == "/hit"
    assert route('event.type.contains("order")', evt) == "/hit"
    assert route(r'event.type.matches("^com\\.example\\.order\\.[a-z]+\\.v[0-9]+$")', evt) == "/hit"
    assert route('event.type.matches("^org\\\\.")', evt) is None
    assert route("size(event.type) == 28", evt) == "/hit"


def test_has_guards_optional_fields() -> None:
    important = event(data={"important": True})
    plain = event(data={"note": "x"})
    match = "has(event.data.important) && event.data.important == true"
    assert route(match, important) == "/hit"
    assert route(match, plain) is None
    assert route("has(event.subject)", plain) is None
    assert route("has(event.subject)", event(subject="s")) == "/hit"
    assert route("!has(event.data)", event(data=None)) == "/hit"


# --- non-JSON data -------------------------------------------------------------------------
def test_text_data_is_a_string() -> None:
    evt = event(data="hello world", datacontenttype="text/plain")
    assert route('event.data.startsWith("hello")', evt) == "/hit"
    # JSON inside a text payload stays a string, as in Dapr
    quoted = event(data='{"a": 1}', datacontenttype="text/plain")
    assert route('event.data == "{\\"a\\": 1}"', quoted) == "/hit"
    with pytest.raises(RouteEvaluationError):
        route("event.data.a == 1", quoted)


def test_binary_data_is_bytes_and_base64() -> None:
    evt = event(data=b"\x00\x01binary", datacontenttype="application/octet-stream")
    assert route('event.data == b"\\x00\\x01binary"', evt) == "/hit"
    assert route("size(event.data) == 8", evt) == "/hit"
    assert route('event.data_base64 == "AAFiaW5hcnk="', evt) == "/hit"
    assert route("has(event.data_base64)", event(data={"a": 1})) is None
    nested = event(data={"blob": b"a\x00b"}, datacontenttype="application/json")
    assert route("size(event.data.blob) == 3", nested) == "/hit"


def test_string_with_nul_is_an_evaluation_error_not_a_truncated_match() -> None:
    # the binding would cut "a\x00b" to "a"; failing beats matching the wrong string
    evt = event(data={"name": "a\x00b"})
    with pytest.raises(RouteEvaluationError, match="NUL"):
        route('event.data.name == "a"', evt)
    assert route('event.data.name == "a"', evt, on_error="no_match") is None


def test_json_string_and_array_data() -> None:
    json_string = event(data="plain", datacontenttype="application/json")
    assert route('event.data == "plain"', json_string) == "/hit"
    assert route("event.data[1] == 2", event(data=[1, 2, 3])) == "/hit"
    assert route("event.data.exists(x, x.k == 1)", event(data=({"k": 1},))) == "/hit"


# --- compile-time errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("match", "detail"),
    [
        ("event.type ==", "Syntax error"),
        ('event.type = "a"', "Syntax error"),
        ("(event.type", "Syntax error"),
        ('1 + "a" == 2', "no matching overload"),
        ("nope == 1", "undeclared reference to 'nope'"),
    ],
)
def test_bad_expression_is_rejected_at_load_time(match: str, detail: str) -> None:
    with pytest.raises(RoutingError) as caught:
        RouteTable.compile([Route('event.type == "ok"', "/ok"), Route(match, "/bad")])
    message = str(caught.value)
    assert repr(match) in message
    assert detail in message


@pytest.mark.parametrize("match", ['"a string"', "1 + 2", "[true]"])
def test_expression_that_cannot_be_a_bool_is_rejected_at_load_time(match: str) -> None:
    with pytest.raises(RoutingError, match="not a bool"):
        RouteTable.compile([Route(match, "/x")])


@pytest.mark.parametrize("path", ["", None, 3])
def test_bad_paths_are_rejected(path: Any) -> None:
    with pytest.raises(RoutingError, match="path"):
        RouteTable.compile([Route("true", path)])
    with pytest.raises(RoutingError, match="default"):
        RouteTable.compile([], default=path if path is not None else "")


def test_bad_on_error_is_rejected() -> None:
    with pytest.raises(RoutingError, match="on_error"):
        RouteTable.compile([], on_error="ignore")  # type: ignore[arg-type]


# --- evaluation errors -------------------------------------------------------------------
ERROR_CASES = [
    "event.data.missing == 1",  # no such key
    'event.data.amount > "100"',  # no such overload
    "event.subject == 's'",  # unset optional attribute: absent, as in Dapr's envelope
    "event.type",  # a string, not a bool (dyn statically, so only known at run time)
    "event.data.amount / 0.0 > 1.0 && event.data.x",
]


@pytest.mark.parametrize("match", ERROR_CASES)
def test_evaluation_error_fails_the_event_as_in_dapr(match: str) -> None:
    evt = event(data={"amount": 150})
    table = RouteTable.compile([Route(match, "/bad"), Route("true", "/next")], default="/d")
    with pytest.raises(RouteEvaluationError) as caught:
        table.path_for(evt)
    assert caught.value.expression == match
    assert caught.value.event_id == evt.id
    assert match in str(caught.value)


@pytest.mark.parametrize("match", ERROR_CASES)
def test_evaluation_error_as_no_match_tries_the_next_rule(
    match: str, caplog: pytest.LogCaptureFixture
) -> None:
    evt = event(data={"amount": 150})
    table = RouteTable.compile(
        [Route(match, "/bad"), Route('event.type.endsWith("created")', "/next")],
        on_error="no_match",
    )
    with caplog.at_level(logging.DEBUG, logger="tether.platform.pubsub.routing"):
        assert table.path_for(evt) == "/next"
    assert any(match in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    alone = RouteTable.compile([Route(match, "/bad")], on_error="no_match")
    assert alone.path_for(evt) is None


def test_error_absorbed_by_logic_is_not_an_error() -> None:
    # CEL's commutative && and ||: a true (or false) side wins over an erroring one
    evt = event(data={"amount": 150})
    assert route("event.data.missing == 1 || event.data.amount > 100", evt) == "/hit"
    assert route("event.data.missing == 1 && event.data.amount > 1000", evt) is None


# --- the cut-down activation -------------------------------------------------------------
def test_needs_follow_select_chains() -> None:
    needs = needs_of(['event.type == "a" && event.data.customer.tier == "gold"'])
    assert set(needs.fields) == {"type", "data"}
    assert needs.fields["data"].fields["customer"].fields["tier"].whole
    assert not needs.whole


@pytest.mark.parametrize(
    "match",
    [
        "size(event) > 0",
        'event["type"] == "a"',
        "event.data.size() == 1",
        "`weird`",
        '"a" in event.data',
        "has(event.data)",
    ],
)
def test_needs_fall_back_to_whole_values(match: str) -> None:
    needs = needs_of([match])
    assert needs.whole or needs.fields["data"].whole


def test_needs_ignore_strings_and_comments() -> None:
    needs = needs_of(['event.type == "event.data.x" // event.subject\n', "r'event.id' == 'x'"])
    assert set(needs.fields) == {"type"}


def test_activation_holds_only_named_fields_with_doubles() -> None:
    evt = event(data={"a": {"b": 1, "c": 2}, "d": [1, True]}, extensions={"tenant": "t"})
    built = activation(evt, needs_of(["event.data.a.b == 1 && event.data.d[0] == 1"]))
    assert built == {"data": {"a": {"b": 1.0}, "d": [1.0, True]}}
    assert type(built["data"]["d"][1]) is bool
    whole = activation(evt, Needs(whole=True))
    assert whole["tenant"] == "t" and whole["data"]["a"] == {"b": 1.0, "c": 2.0}
    assert "subject" not in whole and "data_base64" not in whole


def test_rules_reading_other_fields_than_their_neighbours() -> None:
    # one rule needs only the type, the next a data field: the shared activation has both
    table = RouteTable.compile(
        [Route('event.type == "x"', "/x"), Route("event.data.n > 1", "/n")], default="/d"
    )
    assert table.path_for(event(data={"n": 2})) == "/n"
    assert table.path_for(event(data={"n": 0})) == "/d"
