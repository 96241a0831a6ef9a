"""Calls the Account actors through its own sidecar (Dapr's actor API): 20 concurrent
deposits to one account (turns: none is lost), then a reminder that adds interest."""

import asyncio
import os
import sys

from aiohttp import ClientSession

SIDECAR = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/actors/Account"


async def call(session: ClientSession, account: str, method: str, body: object = None) -> dict:
    for _ in range(300):  # until the bank's sidecar hosts the type
        async with session.put(f"{SIDECAR}/{account}/method/{method}", json=body) as answer:
            if answer.status == 200:
                return await answer.json()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{method} on {account} never succeeded")


async def main() -> int:
    async with ClientSession() as session:
        await call(session, "alice", "balance")
        await asyncio.gather(*(call(session, "alice", "deposit", {"amount": 10})
                               for _ in range(20)))
        print(f"after 20 concurrent deposits of 10: {await call(session, 'alice', 'balance')}",
              flush=True)
        await call(session, "alice", "add_interest_later")
        for _ in range(100):
            balance = (await call(session, "alice", "balance"))["balance"]
            if balance != 200:
                break
            await asyncio.sleep(0.1)
        print(f"after the interest reminder: balance {balance}", flush=True)
        return 0 if balance == 220 else 1


sys.exit(asyncio.run(main()))
