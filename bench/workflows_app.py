"""The bench's workflows as a module for ``tether worker workflows_app:wfr`` (bench/ on
PYTHONPATH): bench/workflows.py --tether-worker passes the broker, state store and namespace
in TETHER_BENCH_SPEC (JSON), so the worker processes find the same backend as the client."""

from __future__ import annotations

import json
import os

from workflows import Spec, register

from tether.workers.workflows import WorkflowRuntime

_spec = Spec(**json.loads(os.environ["TETHER_BENCH_SPEC"]))
wfr = WorkflowRuntime(_spec.config())
register(wfr, _spec.async_activities)
