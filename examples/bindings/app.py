"""A plain HTTP app (no Tether import): a cron input binding calls it at POST /batch every
two seconds; each tick is written to PostgreSQL through the sidecar's output binding
`sqldb` (Dapr's bindings API). After three ticks it reads back what it wrote and exits."""

import asyncio
import json
import os
import sys
import uuid

from aiohttp import ClientSession, web

SIDECAR = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/bindings/sqldb"
RUN = uuid.uuid4().hex[:8]  # this run's rows, so that a rerun reads only its own
TICKS = 3
done = asyncio.Event()
seen = 0


async def sql(session: ClientSession, operation: str, statement: str,
              params: list[object] | None = None) -> bytes:
    body = {"operation": operation, "metadata": {"sql": statement}}
    if params is not None:
        body["metadata"]["params"] = json.dumps(params)
    async with session.post(SIDECAR, json=body) as answer:
        data = await answer.read()
        if answer.status >= 300:
            raise RuntimeError(f"{operation} failed: {answer.status} {data.decode()}")
        return data


async def batch(request: web.Request) -> web.Response:
    """One cron tick: its time arrives in the readTimeUTC header, as Dapr sends it."""
    global seen
    tick = request.headers.get("readTimeUTC", "?")
    async with ClientSession() as session:
        await sql(session, "exec",
                  "INSERT INTO tether_example_batches (run, tick) VALUES ($1, $2)", [RUN, tick])
    seen += 1
    print(f"tick {seen}: wrote {tick}", flush=True)
    if seen >= TICKS:
        done.set()
    return web.Response(status=200)


async def main() -> int:
    app = web.Application()
    app.router.add_post("/batch", batch)
    app.router.add_route("OPTIONS", "/batch", lambda request: web.Response())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["APP_PORT"])).start()
    async with ClientSession() as session:
        # the sidecar answers once its components are ready
        for _ in range(100):
            try:
                await sql(session, "exec", "CREATE TABLE IF NOT EXISTS tether_example_batches"
                                           " (run text, tick text, at timestamptz DEFAULT now())")
                break
            except (OSError, RuntimeError):
                await asyncio.sleep(0.2)
        await asyncio.wait_for(done.wait(), 60)
        rows = json.loads(await sql(session, "query",
                                    "SELECT tick FROM tether_example_batches WHERE run = $1"
                                    " ORDER BY at", [RUN]))
    print(f"run {RUN}: {len(rows)} ticks in PostgreSQL: {[row[0] for row in rows]}", flush=True)
    await runner.cleanup()
    return 0 if len(rows) >= TICKS else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
