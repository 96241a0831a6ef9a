"""The runtime on Service Bus (the honest fake of tests/brokers/servicebus_fake.py: no
Service Bus server can run here): timers are Service Bus scheduled messages, no scheduler
runs."""

from __future__ import annotations

from pathlib import Path

from tests.brokers.harness_servicebus import ServiceBusHarness
from tests.workflows.runtime_apps import register
from tether.platform.components import Component
from tether.platform.workflows.durable import RuntimeConfig
from tether.platform.workflows.history import RuntimeStatus
from tether.workers.workflows import WorkflowRuntime

WAIT = 120.0


async def test_patterns_with_timers_on_service_bus(tmp_path: Path) -> None:
    harness = ServiceBusHarness()
    broker = harness.broker()
    await broker.connect()
    try:
        config = RuntimeConfig(broker=broker, namespace="sb", state_store=Component(
            name="s", type="state.sqlite",
            metadata={"connectionString": str(tmp_path / "state.db")}))
        wfr = WorkflowRuntime(config)
        register(wfr)
        async with wfr:
            assert wfr.scheduler is None  # Service Bus schedules natively
            client = wfr.client()
            chain = await client.schedule_new_workflow("chain", input=1)
            race = await client.schedule_new_workflow("race", input=0.3)
            retry = await client.schedule_new_workflow("retrying",
                                                       input={"fail": 1, "attempts": 3})
            for iid, expected in ((chain, 32), (race, "timeout"), (retry, "ok after 2")):
                state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
                assert state is not None and state.runtime_status == RuntimeStatus.COMPLETED
                assert state.output() == expected
    finally:
        await broker.close()
