"""A plain HTTP app (no Tether import) hosting the actor type Account with Dapr's host
contract: GET /dapr/config declares it; PUT /actors/Account/{id}/method/{method} runs a
method (one at a time per account, wherever it is called from); state goes through the
sidecar's actor state API; a reminder posts interest once."""

import json
import os

from aiohttp import ClientSession, web

SIDECAR = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/actors/Account"


async def balance_of(session: ClientSession, account: str) -> int:
    async with session.get(f"{SIDECAR}/{account}/state/balance") as answer:
        return int(await answer.text()) if answer.status == 200 else 0


async def save(session: ClientSession, account: str, balance: int) -> None:
    ops = [{"operation": "upsert", "request": {"key": "balance", "value": balance}}]
    async with session.post(f"{SIDECAR}/{account}/state", json=ops) as answer:
        answer.raise_for_status()


async def config(request: web.Request) -> web.Response:
    return web.json_response({"entities": ["Account"], "actorIdleTimeout": "1m"})


async def method(request: web.Request) -> web.Response:
    account, name = request.match_info["id"], request.match_info["method"]
    body = await request.read()
    async with ClientSession() as session:
        balance = await balance_of(session, account)
        if name == "deposit":
            balance += json.loads(body)["amount"]
            await save(session, account, balance)
        elif name == "add_interest_later":
            # a durable reminder: it fires even if this app restarts meanwhile
            async with session.post(f"{SIDECAR}/{account}/reminders/interest",
                                    json={"dueTime": "1s", "data": {"percent": 10}}) as r:
                r.raise_for_status()
    return web.json_response({"account": account, "balance": balance})


async def remind(request: web.Request) -> web.Response:
    account = request.match_info["id"]
    percent = (await request.json())["data"]["percent"]
    async with ClientSession() as session:
        balance = await balance_of(session, account)
        await save(session, account, balance + balance * percent // 100)
    print(f"interest added to {account}", flush=True)
    return web.Response()


app = web.Application()
app.router.add_get("/dapr/config", config)
app.router.add_put("/actors/Account/{id}/method/remind/{name}", remind)
app.router.add_put("/actors/Account/{id}/method/{method}", method)
app.router.add_delete("/actors/Account/{id}", lambda request: web.Response())
web.run_app(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), print=None)
