"""bindings.cron: schedules parsed as Dapr's, ticks on the wall clock, no bursts."""

from __future__ import annotations

import asyncio
import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.bindings.components.yaml_a import build
from tether.platform.bindings.binding import InputMessage, InputSource
from tether.platform.bindings.components.cron import CronSource, Schedule, go_time_utc
from tether.platform.bindings.registry import BindingConfigError

UTC = datetime.UTC


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       micro: int = 0, zone: datetime.tzinfo = UTC) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)


def schedule(text: str, **metadata: str) -> Schedule:
    source = build("bindings.cron", schedule=text, **metadata).input
    assert isinstance(source, CronSource)
    return source.schedule


def read_time(message: InputMessage) -> datetime.datetime:
    stamp = message.metadata["readTimeUTC"]
    assert stamp.endswith(" +0000 UTC")
    return datetime.datetime.fromisoformat(stamp.removesuffix(" +0000 UTC")[:26]).replace(
        tzinfo=UTC)


async def collect(source: InputSource, count: int,
                  slow_first: float = 0.0) -> list[InputMessage]:
    """Run the source until ``count`` messages arrived (the first emit taking
    ``slow_first`` seconds), then cancel it."""
    got: list[InputMessage] = []
    done = asyncio.Event()

    async def emit(message: InputMessage) -> None:
        got.append(message)
        if len(got) == 1 and slow_first:
            await asyncio.sleep(slow_first)
        if len(got) >= count:
            done.set()

    task = asyncio.create_task(source.run(emit))
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await source.close()
    return got[:count]


async def test_every_second_fires_once_per_second_with_dapr_metadata() -> None:
    built = build("bindings.cron", schedule="@every 1s")
    assert built.output is None and built.input is not None and built.input.exclusive
    messages = await collect(built.input, 3)
    for message in messages:
        assert message.data == b"" and message.key is None
        assert message.metadata["timeZone"] == "Local"
    seconds = [read_time(m).replace(microsecond=0) for m in messages]
    assert seconds == sorted(set(seconds))  # one tick per second, none twice


async def test_a_slow_emit_skips_missed_ticks_instead_of_bursting() -> None:
    source = build("bindings.cron", schedule="@every 1s").input
    assert source is not None
    _, second, third = await collect(source, 3, slow_first=2.5)
    # the ticks due during the slow emit are dropped: the next ones still come a second
    # apart, not all at once when the emit returns
    assert read_time(second).replace(microsecond=0) < read_time(third).replace(microsecond=0)


async def test_close_without_run_and_run_cancelled_at_once() -> None:
    source = build("bindings.cron", schedule="@daily").input
    assert source is not None
    await source.close()

    async def emit(message: InputMessage) -> None:
        raise AssertionError("no tick expected")

    task = asyncio.create_task(source.run(emit))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await source.close()


def test_every_uses_go_durations_on_whole_seconds() -> None:
    assert schedule("@every 1m30s").every == 90
    assert schedule("@every 10s").every == 10
    assert schedule("@every 500ms").every == 1  # robfig/cron: at least a second
    tick = schedule("@every 10s").next_after(at(2024, 1, 1, 12, 0, 0, 700_000))
    assert tick == at(2024, 1, 1, 12, 0, 10)


def test_six_fields_start_with_seconds() -> None:
    every_two = schedule("*/2 * * * * *")
    assert every_two.next_after(at(2024, 1, 1, 12, 0, 0, 500_000)) == at(2024, 1, 1, 12, 0, 2)
    half_past = schedule("0 30 3-6,20-23 * * *")
    assert half_past.next_after(at(2024, 1, 1, 7, 0, 0)) == at(2024, 1, 1, 20, 30, 0)


def test_five_fields_start_with_minutes() -> None:
    quarter = schedule("*/15 * * * *", timeZone="UTC")
    assert quarter.next_after(at(2024, 1, 1, 12, 1, 0)) == at(2024, 1, 1, 12, 15, 0)


@pytest.mark.parametrize(("text", "after", "expected"), [
    ("@hourly", at(2024, 1, 1, 12, 0, 1), at(2024, 1, 1, 13)),
    ("@daily", at(2024, 1, 1, 12), at(2024, 1, 2)),
    ("@midnight", at(2024, 1, 1, 12), at(2024, 1, 2)),
    ("@weekly", at(2024, 1, 3), at(2024, 1, 7)),  # Sunday
    ("@monthly", at(2024, 1, 3), at(2024, 2, 1)),
    ("@yearly", at(2024, 1, 3), at(2025, 1, 1)),
    ("@annually", at(2024, 1, 3), at(2025, 1, 1)),
])
def test_descriptors(text: str, after: datetime.datetime, expected: datetime.datetime) -> None:
    assert schedule(text, timeZone="UTC").next_after(after) == expected


def test_time_zones() -> None:
    new_york = ZoneInfo("America/New_York")
    prefixed = schedule("CRON_TZ=America/New_York 0 30 04 * * *")
    assert prefixed.zone_name == "America/New_York"
    assert prefixed.next_after(at(2024, 7, 1, 12)) == at(2024, 7, 2, 4, 30, zone=new_york)
    by_metadata = schedule("0 30 04 * * *", timeZone="Asia/Tokyo")
    assert by_metadata.next_after(at(2024, 7, 1, 12)) == at(2024, 7, 2, 4, 30,
                                                            zone=ZoneInfo("Asia/Tokyo"))


def test_following_skips_missed_ticks() -> None:
    every = schedule("@every 1s")
    tick = at(2024, 1, 1, 12, 0, 0)
    assert every.following(tick, at(2024, 1, 1, 12, 0, 0, 300_000)) == (
        at(2024, 1, 1, 12, 0, 1), False)
    assert every.following(tick, at(2024, 1, 1, 12, 0, 3, 500_000)) == (
        at(2024, 1, 1, 12, 0, 4), True)
    minutely = schedule("0 * * * * *", timeZone="UTC")
    assert minutely.following(tick, at(2024, 1, 1, 12, 5, 30)) == (at(2024, 1, 1, 12, 6), True)


@pytest.mark.parametrize("text", [
    "* * *", "* * * * * * *", "61 * * * * *", "* 25 * * *", "@every soon", "@every -5s",
    "@fortnightly", "CRON_TZ=Nowhere/Else * * * * *", "every minute",
])
def test_bad_schedules_are_load_errors_naming_schedule(text: str) -> None:
    with pytest.raises(BindingConfigError, match="metadata schedule"):
        build("bindings.cron", schedule=text)


def test_schedule_required_and_time_zone_checked() -> None:
    with pytest.raises(BindingConfigError, match="schedule is required"):
        build("bindings.cron", timeZone="UTC")
    with pytest.raises(BindingConfigError, match="metadata timeZone"):
        build("bindings.cron", schedule="@daily", timeZone="Mars/Base")
    with pytest.raises(BindingConfigError, match="direction"):
        build("bindings.cron", schedule="@daily", direction="output")


def test_read_time_is_gos_time_string() -> None:
    assert go_time_utc(1_700_000_000_123_456_789) == "2023-11-14 22:13:20.123456789 +0000 UTC"
    assert go_time_utc(1_700_000_000_000_000_000) == "2023-11-14 22:13:20 +0000 UTC"
