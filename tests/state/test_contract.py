"""The state store contract: one suite, run unchanged on every store (see conftest.py).

Keys carry the test's tag, so stores sharing a server (redis) never see each other's
data; PostgreSQL gets a table per test and SQLite a file per test.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest

from tests.state.conftest import StoreHarness
from tether.platform.state.store import (
    FEATURE_ETAG,
    FEATURE_QUERY_API,
    FEATURE_TRANSACTIONAL,
    FEATURE_TTL,
    MAX_TTL_SECONDS,
    DeleteOperation,
    ETagInvalidError,
    ETagMismatchError,
    InvalidQueryError,
    OutboxRecord,
    Query,
    QueryNotSupportedError,
    SetOperation,
    StateStore,
)

WAIT = 60.0  # a ceiling for polling, never an assertion about speed
QUERYABLE = {"memory", "sqlite", "postgresql"}
#: an ETag in the right format that no store ever handed out
NEVER_ISSUED = "0123456789abcdef0123456789abcdef"


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT}s: {what}")
        await asyncio.sleep(0.05)


def record(i: int, tag: str) -> OutboxRecord:
    return OutboxRecord(f"{tag}-evt-{i}", "pubsub", "orders", json.dumps({"i": i}).encode())


async def test_features_are_declared(harness: StoreHarness, store: StateStore) -> None:
    assert {FEATURE_ETAG, FEATURE_TRANSACTIONAL, FEATURE_TTL} <= store.features
    assert (FEATURE_QUERY_API in store.features) == (harness.name in QUERYABLE)


async def test_set_get_delete(store: StateStore, tag: str) -> None:
    key = f"{tag}-a"
    assert await store.get(key) is None
    etag = await store.set(SetOperation(key, b"one"))
    item = await store.get(key)
    assert item is not None
    assert (item.key, item.value, item.etag) == (key, b"one", etag)
    etag2 = await store.set(SetOperation(key, b"two"))
    assert etag2 != etag
    item = await store.get(key)
    assert item is not None and (item.value, item.etag) == (b"two", etag2)
    await store.delete(DeleteOperation(key))
    assert await store.get(key) is None
    await store.delete(DeleteOperation(key))  # deleting what is absent is fine


async def test_bulk_get_keeps_order_and_reports_missing(store: StateStore, tag: str) -> None:
    keys = [f"{tag}-{i}" for i in range(5)]
    etags = {k: await store.set(SetOperation(k, k.encode())) for k in keys[::2]}
    items = await store.bulk_get(keys)
    assert [None if i is None else (i.key, i.value, i.etag) for i in items] == [
        (k, k.encode(), etags[k]) if k in etags else None for k in keys
    ]
    assert await store.bulk_get([]) == []


async def test_stale_etag_changes_nothing(store: StateStore, tag: str) -> None:
    key = f"{tag}-k"
    old = await store.set(SetOperation(key, b"v1"))
    current = await store.set(SetOperation(key, b"v2", etag=old))
    with pytest.raises(ETagMismatchError) as caught:
        await store.set(SetOperation(key, b"v3", etag=old))
    assert caught.value.key == key
    with pytest.raises(ETagMismatchError):
        await store.delete(DeleteOperation(key, etag=old))
    item = await store.get(key)
    assert item is not None and (item.value, item.etag) == (b"v2", current)
    await store.delete(DeleteOperation(key, etag=current))
    assert await store.get(key) is None


async def test_etag_on_a_missing_key_is_a_mismatch(store: StateStore, tag: str) -> None:
    with pytest.raises(ETagMismatchError):
        await store.set(SetOperation(f"{tag}-none", b"v", etag=NEVER_ISSUED))
    with pytest.raises(ETagMismatchError):
        await store.delete(DeleteOperation(f"{tag}-none", etag=NEVER_ISSUED))
    assert await store.get(f"{tag}-none") is None


async def test_an_old_etag_never_matches_a_recreated_key(store: StateStore, tag: str) -> None:
    key = f"{tag}-re"
    old = await store.set(SetOperation(key, b"v"))
    await store.delete(DeleteOperation(key))
    await store.set(SetOperation(key, b"v"))
    with pytest.raises(ETagMismatchError):
        await store.set(SetOperation(key, b"w", etag=old))


async def test_first_write(store: StateStore, tag: str) -> None:
    key = f"{tag}-fw"
    etag = await store.set(SetOperation(key, b"first", first_write=True))
    with pytest.raises(ETagMismatchError):
        await store.set(SetOperation(key, b"second", first_write=True))
    item = await store.get(key)
    assert item is not None and (item.value, item.etag) == (b"first", etag)
    etag = await store.set(SetOperation(key, b"third", etag=etag, first_write=True))
    with pytest.raises(ETagMismatchError):
        await store.set(SetOperation(key, b"x", etag=NEVER_ISSUED, first_write=True))
    item = await store.get(key)
    assert item is not None and (item.value, item.etag) == (b"third", etag)


@pytest.mark.parametrize(
    "bad", ["not-an-etag", "1", "W/\"abc\"", "0123456789ABCDEF0123456789ABCDEF"]
)
async def test_an_etag_no_store_produces_is_invalid(store: StateStore, tag: str, bad: str) -> None:
    key = f"{tag}-inv"
    etag = await store.set(SetOperation(key, b"v"))
    with pytest.raises(ETagInvalidError):
        await store.set(SetOperation(key, b"w", etag=bad))
    with pytest.raises(ETagInvalidError):
        await store.delete(DeleteOperation(key, etag=bad))
    with pytest.raises(ETagInvalidError):
        await store.transact([SetOperation(f"{tag}-other", b"x"),
                              SetOperation(key, b"w", etag=bad)])
    item = await store.get(key)
    assert item is not None and (item.value, item.etag) == (b"v", etag)
    assert await store.get(f"{tag}-other") is None


async def test_ttl_expires(store: StateStore, tag: str) -> None:
    key, keep = f"{tag}-ttl", f"{tag}-keep"
    started = time.time()
    await store.set(SetOperation(key, b"brief", ttl_seconds=1))
    await store.set(SetOperation(keep, b"a", ttl_seconds=1))
    await store.set(SetOperation(keep, b"b", ttl_seconds=-1))  # -1 lifts the earlier TTL
    item = await store.get(key)
    if item is not None:
        expires = datetime.fromisoformat(item.metadata["ttlExpireTime"]).timestamp()
        assert started < expires < started + 1 + WAIT

    async def gone() -> bool:
        found = await store.get(key)
        if found is not None:  # a get never returns an item past its expiry time
            expiry = datetime.fromisoformat(found.metadata["ttlExpireTime"]).timestamp()
            assert expiry > time.time() - 1.0  # 1 s allows for clock rounding, not speed
        return found is None

    await eventually(gone, "an item with a 1 s TTL expires")
    assert await store.bulk_get([key]) == [None]
    kept = await store.get(keep)
    assert kept is not None and kept.value == b"b" and "ttlExpireTime" not in kept.metadata
    # an expired key counts as absent: first-write succeeds, an ETag can't match
    await store.set(SetOperation(key, b"again", first_write=True))


async def test_invalid_ttl_is_refused(store: StateStore, tag: str) -> None:
    with pytest.raises(ValueError):
        await store.set(SetOperation(f"{tag}-t", b"v", ttl_seconds=0))
    assert await store.get(f"{tag}-t") is None


async def test_the_largest_ttl_is_daprs(harness: StoreHarness, store: StateStore,
                                        tag: str) -> None:
    key = f"{tag}-long"
    await store.set(SetOperation(key, b'{"a":1}', ttl_seconds=MAX_TTL_SECONDS))
    item = await store.get(key)
    assert item is not None and item.value == b'{"a":1}'
    expires = datetime.fromisoformat(item.metadata["ttlExpireTime"]).timestamp()
    assert expires > time.time() + MAX_TTL_SECONDS - WAIT
    if harness.name in QUERYABLE:  # the item does not break a query over the store
        assert [i.key for i in (await store.query(Query(key_prefix=tag))).items] == [key]


#: operations every store refuses before writing anything (key: why)
REFUSED = {
    "ttl-zero": lambda k: SetOperation(k, b"v", ttl_seconds=0),
    "ttl-below-minus-one": lambda k: SetOperation(k, b"v", ttl_seconds=-2),
    "ttl-over-dapr-max": lambda k: SetOperation(k, b"v", ttl_seconds=MAX_TTL_SECONDS + 1),
    "ttl-int64-max": lambda k: SetOperation(k, b"v", ttl_seconds=2**63 - 1),
    "set-nul-in-key": lambda k: SetOperation(k + "\x00", b"v"),
    "set-lone-surrogate-key": lambda k: SetOperation(k + "\ud801", b"v"),
    "delete-nul-in-key": lambda k: DeleteOperation(k + "\x00"),
    "nul-in-content-type": lambda k: SetOperation(k, b"v", content_type="text/\x00"),
    "lone-surrogate-content-type": lambda k: SetOperation(k, b"v", content_type="\udc00"),
    "etag": lambda k: SetOperation(k, b"v", etag="not-an-etag"),
    "new-etag": lambda k: SetOperation(k, b"v", new_etag="not-an-etag"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_a_refused_write_changes_nothing(harness: StoreHarness, store: StateStore,
                                               tag: str, name: str) -> None:
    a, b, bad_key = f"{tag}-a", f"{tag}-b", f"{tag}-bad"
    etag = await store.set(SetOperation(a, b'{"v":0}'))
    bad = REFUSED[name](bad_key)
    single = store.set(bad) if isinstance(bad, SetOperation) else store.delete(bad)
    with pytest.raises(ValueError):  # InvalidOperationError, ETagInvalidError
        await single
    # a transaction with one bad operation writes nothing at all, its outbox included
    with pytest.raises(ValueError):
        await store.transact([SetOperation(a, b'{"v":1}'), SetOperation(b, b'{"v":1}'), bad],
                             [record(1, tag)])
    with pytest.raises(ValueError):
        await store.transact([bad, SetOperation(b, b'{"v":1}')])
    items = await store.bulk_get([a, b, bad_key])
    assert [i and (i.value, i.etag) for i in items] == [(b'{"v":0}', etag), None, None]
    assert await store.outbox_pending(10) == []
    if harness.name in QUERYABLE:  # and the store still answers queries
        assert [i.key for i in (await store.query(Query(key_prefix=tag))).items] == [a]


@pytest.mark.parametrize("key", ["nul\x00key", "lone\ud801"])
async def test_a_key_no_store_can_hold_is_absent(store: StateStore, key: str) -> None:
    assert await store.get(key) is None
    assert await store.bulk_get(["absent", key]) == [None, None]


async def test_transaction_applies_everything(store: StateStore, tag: str) -> None:
    a, b, c = f"{tag}-a", f"{tag}-b", f"{tag}-c"
    etag_c = await store.set(SetOperation(c, b"c0"))
    await store.transact(
        [SetOperation(a, b"a1"), SetOperation(b, b"b1"), DeleteOperation(c, etag=etag_c),
         SetOperation(a, b"a2")],
        [record(1, tag), record(2, tag)],
    )
    items = await store.bulk_get([a, b, c])
    assert [i and i.value for i in items] == [b"a2", b"b1", None]
    pending = await store.outbox_pending(10)
    assert pending == [record(1, tag), record(2, tag)]


async def test_a_conflict_leaves_the_transaction_unapplied(store: StateStore, tag: str) -> None:
    a, b, c = f"{tag}-a", f"{tag}-b", f"{tag}-c"
    await store.set(SetOperation(a, b"a0"))
    stale = await store.set(SetOperation(c, b"c0"))
    current = await store.set(SetOperation(c, b"c1"))
    for third in (SetOperation(c, b"c2", etag=stale), DeleteOperation(c, etag=stale),
                  SetOperation(c, b"c2", first_write=True)):
        with pytest.raises(ETagMismatchError):
            await store.transact(
                [SetOperation(a, b"a1"), SetOperation(b, b"b1"), third], [record(1, tag)]
            )
        items = await store.bulk_get([a, b, c])
        assert [i and i.value for i in items] == [b"a0", None, b"c1"]
        assert items[2] is not None and items[2].etag == current
        assert await store.outbox_pending(10) == []  # a failed transaction stores no event


async def test_later_operations_see_earlier_ones(store: StateStore, tag: str) -> None:
    key = f"{tag}-k"
    # first-write after a delete in the same transaction: the key is absent by then
    await store.set(SetOperation(key, b"v0"))
    await store.transact([DeleteOperation(key), SetOperation(key, b"v1", first_write=True)])
    item = await store.get(key)
    assert item is not None and item.value == b"v1"
    # a set then first-write of the same key conflicts
    with pytest.raises(ETagMismatchError):
        await store.transact([SetOperation(f"{tag}-n", b"x"),
                              SetOperation(f"{tag}-n", b"y", first_write=True)])
    assert await store.get(f"{tag}-n") is None


async def test_transact_returns_each_sets_new_etag(store: StateStore, tag: str) -> None:
    a, b = f"{tag}-a", f"{tag}-b"
    await store.set(SetOperation(b, b"b0"))
    etags = await store.transact(
        [SetOperation(a, b"a1"), DeleteOperation(b), SetOperation(b, b"b1"),
         SetOperation(a, b"a2")]
    )
    assert len(etags) == 4 and etags[1] is None
    assert len({e for e in etags if e is not None}) == 3  # every write a fresh ETag
    items = await store.bulk_get([a, b])
    # a key written twice has the ETag of its last write
    assert [i and i.etag for i in items] == [etags[3], etags[2]]
    assert await store.transact([]) == []
    # a returned ETag is the item's ETag: it works as the next write's precondition
    etag = etags[2]
    assert etag is not None
    assert await store.transact([DeleteOperation(b, etag=etag)]) == [None]
    assert await store.get(b) is None


async def test_a_set_may_bring_its_new_etag(store: StateStore, tag: str) -> None:
    a, b = f"{tag}-a", f"{tag}-b"
    chosen = [uuid.uuid4().hex for _ in range(3)]
    assert await store.set(SetOperation(a, b"a0", new_etag=chosen[0])) == chosen[0]
    item = await store.get(a)
    assert item is not None and item.etag == chosen[0]
    # with the outbox record that names it, in one transaction
    rec = OutboxRecord(f"{tag}-evt", "pubsub", "changes", json.dumps(chosen[1]).encode())
    etags = await store.transact(
        [SetOperation(a, b"a1", etag=chosen[0], new_etag=chosen[1]), DeleteOperation(b),
         SetOperation(b, b"b1", first_write=True, new_etag=chosen[2])], [rec]
    )
    assert etags == [chosen[1], None, chosen[2]]
    items = await store.bulk_get([a, b])
    assert [i and (i.value, i.etag) for i in items] == [(b"a1", chosen[1]), (b"b1", chosen[2])]
    assert await store.outbox_pending(10) == [rec]
    # the old ETag no longer matches; the chosen one does
    with pytest.raises(ETagMismatchError):
        await store.set(SetOperation(a, b"x", etag=chosen[0]))
    assert await store.set(SetOperation(a, b"a2", etag=chosen[1])) not in chosen
    # a later operation of the same transaction can name an earlier one's chosen ETag
    mine = uuid.uuid4().hex
    etags = await store.transact([SetOperation(b, b"b2", new_etag=mine),
                                  SetOperation(b, b"b3", etag=mine)])
    assert etags[0] == mine and etags[1] not in (None, mine)
    item = await store.get(b)
    assert item is not None and (item.value, item.etag) == (b"b3", etags[1])


@pytest.mark.parametrize("bad", ["", "W/abc", "0123456789ABCDEF0123456789ABCDEF", "1"])
async def test_a_new_etag_no_store_produces_is_refused(store: StateStore, tag: str,
                                                      bad: str) -> None:
    a, b = f"{tag}-a", f"{tag}-b"
    await store.set(SetOperation(a, b"a0"))
    with pytest.raises(ETagInvalidError):
        await store.set(SetOperation(a, b"a1", new_etag=bad))
    with pytest.raises(ETagInvalidError):
        await store.transact([SetOperation(b, b"b1"), SetOperation(a, b"a1", new_etag=bad)],
                             [record(1, tag)])
    items = await store.bulk_get([a, b])
    assert [i and i.value for i in items] == [b"a0", None]  # nothing changed
    assert await store.outbox_pending(10) == []


async def test_outbox_pending_and_done(store: StateStore, tag: str) -> None:
    for i in range(5):
        await store.transact([SetOperation(f"{tag}-{i}", b"v")], [record(i, tag)])
    assert [r.id for r in await store.outbox_pending(3)] == [f"{tag}-evt-{i}" for i in range(3)]
    await store.outbox_done([f"{tag}-evt-0", f"{tag}-evt-2", "unknown-id"])
    assert await store.outbox_pending(10) == [record(i, tag) for i in (1, 3, 4)]
    # a record whose id is already pending replaces it and keeps its place
    again = OutboxRecord(f"{tag}-evt-3", "pubsub", "other", b"replaced")
    await store.transact([SetOperation(f"{tag}-x", b"v")], [again])
    assert await store.outbox_pending(10) == [record(1, tag), again, record(4, tag)]
    await store.outbox_done([f"{tag}-evt-{i}" for i in (1, 3, 4)])
    assert await store.outbox_pending(10) == []
    await store.outbox_done([])


async def test_concurrent_writers_with_etags_one_wins_per_round(
    harness: StoreHarness, tag: str
) -> None:
    writers = [await harness.open() for _ in range(6)]
    key = f"{tag}-hot"
    etag = await writers[0].set(SetOperation(key, b"0"))
    for round_ in range(1, 6):
        async def attempt(store: StateStore, i: int, etag: str = etag, r: int = round_
                          ) -> str | None:
            try:
                return await store.set(SetOperation(key, f"{r}:{i}".encode(), etag=etag))
            except ETagMismatchError:
                return None

        results = await asyncio.gather(*(attempt(w, i) for i, w in enumerate(writers)))
        winners = [(i, e) for i, e in enumerate(results) if e is not None]
        assert len(winners) == 1, f"round {round_}: {len(winners)} writers won"
        winner, etag = winners[0]
        item = await writers[-1].get(key)
        assert item is not None and (item.value, item.etag) == (f"{round_}:{winner}".encode(),
                                                                etag)


async def test_concurrent_first_writes_one_wins(harness: StoreHarness, tag: str) -> None:
    writers = [await harness.open() for _ in range(6)]
    key = f"{tag}-first"

    async def attempt(store: StateStore, i: int) -> bool:
        try:
            await store.set(SetOperation(key, str(i).encode(), first_write=True))
            return True
        except ETagMismatchError:
            return False

    results = await asyncio.gather(*(attempt(w, i) for i, w in enumerate(writers)))
    assert results.count(True) == 1
    item = await writers[0].get(key)
    assert item is not None and item.value == str(results.index(True)).encode()


async def test_concurrent_counter_increments_are_not_lost(
    harness: StoreHarness, tag: str
) -> None:
    writers = [await harness.open() for _ in range(4)]
    key = f"{tag}-counter"
    await writers[0].set(SetOperation(key, b"0"))

    async def increment(store: StateStore, times: int) -> None:
        done = 0
        while done < times:
            item = await store.get(key)
            assert item is not None
            try:
                await store.transact([SetOperation(key, str(int(item.value) + 1).encode(),
                                                   etag=item.etag)])
                done += 1
            except ETagMismatchError:
                await asyncio.sleep(0)

    await asyncio.gather(*(increment(w, 10) for w in writers))
    item = await writers[0].get(key)
    assert item is not None and item.value == b"40"


VALUES = {
    "binary": bytes(range(256)) * 4,
    "empty": b"",
    "json": '{"b": 1,  "a": [true, null, 1.50], "z": "zürich \\u00e9"}'.encode(),
    "json-nul-escape": b'{"a": "x\\u0000y"}',
    "json-scalar": b"42",
    "json-lone-surrogate": b'{"a": "\\ud800"}',
    "json-surrogate-pair": b'{"a": "\\ud83d\\ude80"}',
    "not-utf8-json-like": b'{"a": "\xff"}',
    "text": "héllo wörld 🚀".encode(),
    "large": b"x" * 300_000,
}


@pytest.mark.parametrize("name", sorted(VALUES))
async def test_values_round_trip_exactly(store: StateStore, tag: str, name: str) -> None:
    key = f"{tag}-{name}"
    await store.set(SetOperation(key, VALUES[name]))
    item = await store.get(key)
    assert item is not None and item.value == VALUES[name]
    await store.transact([SetOperation(key, VALUES[name][::-1])])
    item = (await store.bulk_get([key]))[0]
    assert item is not None and item.value == VALUES[name][::-1]


ODD_KEYS = ["app||key", "with space", "ünïcødé-ключ-🚀", "a*b?[c]", "%s 'quote\" \\",
            "line\nbreak", "x" * 500]


async def test_keys_with_odd_characters(store: StateStore, tag: str) -> None:
    keys = [f"{tag}-{k}" for k in ODD_KEYS]
    etags = [await store.set(SetOperation(k, k.encode())) for k in keys]
    items = await store.bulk_get(keys)
    assert [(i.key, i.value, i.etag) for i in items if i] == list(
        zip(keys, [k.encode() for k in keys], etags, strict=True))
    await store.transact([DeleteOperation(k, etag=e) for k, e in zip(keys, etags, strict=True)])
    assert await store.bulk_get(keys) == [None] * len(keys)


# --- query API ---------------------------------------------------------------------

PEOPLE = {
    "1": {"person": {"org": "Dev Ops", "id": 1036}, "city": "Seattle", "state": "WA"},
    "2": {"person": {"org": "Hardware", "id": 1028}, "city": "Portland", "state": "OR"},
    "3": {"person": {"org": "Finance", "id": 1071}, "city": "Sacramento", "state": "CA"},
    "4": {"person": {"org": "Dev Ops", "id": 1042}, "city": "Spokane", "state": "WA"},
    "5": {"person": {"org": "Hardware", "id": 1007}, "city": "Los Angeles", "state": "CA"},
    "6": {"person": {"org": "Dev Ops", "id": 1054}, "city": "San Diego", "state": "CA"},
    "7": {"person": {"org": "Finance", "id": 1002}, "city": "San Francisco", "state": "CA"},
}


async def seed(store: StateStore, tag: str) -> str:
    prefix = f"{tag}||"
    for key, doc in PEOPLE.items():
        await store.set(SetOperation(prefix + key, json.dumps(doc).encode()))
    await store.set(SetOperation(prefix + "blob", b"\x00not json"))
    await store.set(SetOperation(prefix + "expiring", json.dumps(PEOPLE["1"]).encode(),
                                 ttl_seconds=1))
    await store.set(SetOperation(f"other-{tag}||1", json.dumps(PEOPLE["1"]).encode()))
    return prefix


async def run(store: StateStore, prefix: str, **kwargs: object) -> list[str]:
    result = await store.query(Query(key_prefix=prefix, **kwargs))  # type: ignore[arg-type]
    assert result.token is None
    return [item.key.removeprefix(prefix) for item in result.items]


async def test_query(harness: StoreHarness, store: StateStore, tag: str) -> None:
    if harness.name not in QUERYABLE:
        with pytest.raises(QueryNotSupportedError):
            await store.query(Query(filter={"EQ": {"state": "CA"}}))
        return
    prefix = await seed(store, tag)

    async def expired() -> bool:
        return await store.get(prefix + "expiring") is None

    await eventually(expired, "the expiring item expires")
    by_id = [{"key": "person.id"}]
    assert await run(store, prefix, sort=by_id) == ["7", "5", "2", "1", "4", "6", "3"]
    assert await run(store, prefix, filter={"EQ": {"state": "CA"}}, sort=by_id) == [
        "7", "5", "6", "3"]
    assert await run(store, prefix, filter={"EQ": {"person.id": 1028}}) == ["2"]
    assert await run(store, prefix, filter={"EQ": {"person.id": "1028"}}) == []
    assert await run(store, prefix, filter={"IN": {"person.org": ["Dev Ops", "Finance"]}},
                     sort=[{"key": "person.id", "order": "DESC"}]) == ["3", "6", "4", "1", "7"]
    assert await run(store, prefix, filter={"AND": [
        {"EQ": {"person.org": "Dev Ops"}},
        {"OR": [{"EQ": {"state": "CA"}}, {"EQ": {"city": "Seattle"}}]},
    ]}, sort=by_id) == ["1", "6"]
    assert await run(store, prefix, filter={"AND": [
        {"GTE": {"person.id": 1028}}, {"LT": {"person.id": 1054}}, {"NEQ": {"state": "OR"}},
    ]}, sort=by_id) == ["1", "4"]
    assert await run(store, prefix, filter={"EQ": {"nowhere.deep": 1}}) == []
    assert await run(store, prefix, sort=[{"key": "state"}, {"key": "person.id",
                                                               "order": "DESC"}]) == [
        "3", "6", "5", "7", "2", "4", "1"]


async def test_query_pages(harness: StoreHarness, store: StateStore, tag: str) -> None:
    if harness.name not in QUERYABLE:
        with pytest.raises(QueryNotSupportedError):
            await store.query(Query(limit=3, token="3"))
        return
    prefix = await seed(store, tag)
    await store.delete(DeleteOperation(prefix + "expiring"))
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        result = await store.query(Query(filter={"EQ": {"state": "CA"}},
                                         sort=[{"key": "person.id"}], limit=3, token=token,
                                         key_prefix=prefix))
        seen += [item.key.removeprefix(prefix) for item in result.items]
        assert all(json.loads(i.value)["state"] == "CA" for i in result.items)
        assert all(i.etag for i in result.items)
        pages += 1
        token = result.token
        if token is None:
            break
    assert (seen, pages) == (["7", "5", "6", "3"], 2)


@pytest.mark.parametrize("query", [
    Query(filter={"LIKE": {"a": "b"}}),
    Query(filter={"EQ": {"a": "b"}, "IN": {"a": ["b"]}}),
    Query(filter={"EQ": {"a": {"nested": 1}}}),
    Query(filter={"IN": {"a": []}}),
    Query(filter={"AND": []}),
    Query(filter={"EQ": {"": 1}}),
    Query(sort=[{"key": "a", "order": "UP"}]),
    Query(limit=-1),
    Query(token="not-a-token"),
    Query(token="²"),  # a digit to str.isdigit, not to int()
    # operands no store can compare: out of int64 (SQLite), NaN and infinities (not JSON),
    # NUL and lone surrogates (PostgreSQL and UTF-8); in a path too
    Query(filter={"EQ": {"a": 10**30}}),
    Query(filter={"GT": {"a": -(2**63) - 1}}),
    Query(filter={"EQ": {"a": float("nan")}}),
    Query(filter={"IN": {"a": [1, float("inf")]}}),
    Query(filter={"EQ": {"a": "x\x00y"}}),
    Query(filter={"EQ": {"a": "\ud800"}}),
    Query(filter={"EQ": {"a\x00b": 1}}),
    Query(filter={"EQ": {"\udfff": 1}}),
    Query(sort=[{"key": "a\x00b"}]),
])
async def test_bad_queries_are_refused(harness: StoreHarness, store: StateStore,
                                       query: Query) -> None:
    # a store without the query API says so, whatever the query
    expected = InvalidQueryError if harness.name in QUERYABLE else QueryNotSupportedError
    with pytest.raises(expected):
        await store.query(query)
