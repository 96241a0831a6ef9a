"""The WorkflowRuntime the crash tests run in worker processes (`tether worker
tests.workflows.crash_app:app`), configured by the test through the environment."""

from __future__ import annotations

import json
import os

from tests.workflows.runtime_apps import register
from tether.platform.components import Component
from tether.workers.workflows import WorkflowRuntime

_state = json.loads(os.environ.get("WF_CRASH_STATE", "null"))
app = WorkflowRuntime(
    broker_url=os.environ.get("WF_CRASH_BROKER"),
    state_store=Component(name=_state["name"], type=_state["type"],
                          metadata=_state["metadata"]) if _state else None,
    namespace=os.environ.get("WF_CRASH_NAMESPACE"),
    sender_grace=2.0,
)
register(app)
