"""Every exception Tether defines has one root, TetherError, so a caller can catch
whatever Tether raises with one except; Retry and Drop are not errors but signals a
handler raises to steer its delivery."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import tether
from tether.platform.errors import TetherError
from tether.sdk.channel import Drop, Retry

SIGNALS = {Retry, Drop}


def _modules() -> list[str]:
    # every module, the backends' too (the test install has every extra)
    return sorted(m.name for m in pkgutil.walk_packages(tether.__path__, "tether."))


def test_every_exception_derives_from_tether_error() -> None:
    strays, checked = [], 0
    for name in _modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ != name or not issubclass(value, BaseException):
                continue
            checked += 1
            if value not in SIGNALS and not issubclass(value, TetherError):
                strays.append(f"{name}.{value.__qualname__}")
    assert strays == []
    assert checked > 50  # the walk did reach the packages
