"""The CloudEvent type and its conversions to and from every wire format Tether speaks."""

from tether.platform.events.event import (
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    encode_data,
    format_time,
    parse_time,
    utc_now,
)

__all__ = [
    "CloudEvent",
    "InvalidCloudEventError",
    "decode_data",
    "encode_data",
    "format_time",
    "parse_time",
    "utc_now",
]
