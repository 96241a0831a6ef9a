"""``GET /metrics``: the series of one app (or of the whole process) in Prometheus' text
format, on a small aiohttp server of its own (the metrics port, Dapr's default 9090)."""

from __future__ import annotations

import logging

from aiohttp import web

from tether.platform.metrics import DAPR_COUNTERS, REGISTRY

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(app_id: str | None = None) -> str:
    """The text exposition (format 0.0.4) of the series of ``app_id`` (None: all).

    Written here rather than by prometheus_client's ``generate_latest`` for two reasons: it
    keeps only one app's samples, and Dapr's counters keep Dapr's bare names (prometheus_client
    would add ``_total``); ``_created`` samples are left out, as Dapr has none.
    """
    lines: list[str] = []
    for family in REGISTRY.collect():
        samples = [s for s in family.samples if not s.name.endswith("_created")
                   and (app_id is None or s.labels.get("app_id") == app_id)]
        if not samples:
            continue
        name = family.name
        if family.type == "counter" and name not in DAPR_COUNTERS:
            name += "_total"
        lines.append(f"# HELP {name} {_escape_help(family.documentation)}")
        lines.append(f"# TYPE {name} {family.type}")
        for sample in samples:
            # a Dapr counter's samples under its bare name too
            dapr_counter = family.type == "counter" and name == family.name
            sample_name = family.name if dapr_counter else sample.name
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
            lines.append(f"{sample_name}{{{labels}}} {_value(sample.value)}")
    lines.append("")
    return "\n".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _value(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


class MetricsServer:
    """Serves ``GET /metrics`` for ``app_id`` (None: every app of the process) on
    ``host:port`` until :meth:`stop`."""

    def __init__(self, port: int, host: str = "127.0.0.1", app_id: str | None = None) -> None:
        self.port = port
        self.host = host
        self.app_id = app_id
        self._runner: web.AppRunner | None = None

    async def start(self) -> bool:
        """Listen; False (with a warning) if the port cannot be had: metrics are not worth
        stopping the app for."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            log.warning("metrics%s cannot listen on %s:%d (%s); no /metrics",
                        f" of app {self.app_id!r}" if self.app_id else "", self.host,
                        self.port, exc.strerror or exc)
            return False
        self._runner = runner
        log.info("metrics%s on http://%s:%d/metrics",
                 f" of app {self.app_id!r}" if self.app_id else "", self.host, self.port)
        return True

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self.app_id).encode(),
                            headers={"Content-Type": CONTENT_TYPE})
