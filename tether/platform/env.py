"""Every environment variable Tether reads, in one place.

The names are Dapr's where Dapr has one (``NAMESPACE``, ``APP_ID``, ``APP_API_TOKEN``,
``DAPR_*``) and ``TETHER_*`` for Tether's own. Read them through these functions so that a
reader can see what the process depends on, and tests can set one variable and know what
it changes. (The ``secretstores.local.env`` store reads the environment as its data: that
is the store, not configuration.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: the namespace of the app (Dapr's self-hosted mode); key prefixes and component templates
NAMESPACE = "NAMESPACE"
#: the app id, set by ``tether run`` (APP_ID, as Dapr) and ``tether worker`` (both)
APP_ID = "APP_ID"
TETHER_APP_ID = "TETHER_APP_ID"
#: the token the sidecar sends to the app (Dapr's ``dapr-api-token`` header on app calls)
APP_API_TOKEN = "APP_API_TOKEN"
#: the token every call to the sidecar's API must carry as ``dapr-api-token`` when set (the
#: sidecar enforces it, ``tether.Client`` sends it; docs/security.md)
DAPR_API_TOKEN = "DAPR_API_TOKEN"
#: the broker URL of ``tether broker check`` and the embedded default
TETHER_BROKER = "TETHER_BROKER"
#: the folder of the embedded defaults (the ``pubsub`` broker file, the workflow state file)
#: when no component names one; ``tether run`` gives its apps its own, so they share one
TETHER_DATA_DIR = "TETHER_DATA_DIR"
DEFAULT_DATA_DIR = ".tether"
#: where a WorkflowRuntime outside ``tether run`` finds the app's resource files
TETHER_RESOURCES_PATH = "TETHER_RESOURCES_PATH"
#: overrides the workflow namespace (topics, groups, keys) of the app's runtime
TETHER_WORKFLOW_NAMESPACE = "TETHER_WORKFLOW_NAMESPACE"
#: the pub/sub component the workflow runtime uses when the app has several
TETHER_WORKFLOW_PUBSUB = "TETHER_WORKFLOW_PUBSUB"
#: ``asyncio`` runs Tether's processes on the standard event loop instead of uvloop
TETHER_EVENT_LOOP = "TETHER_EVENT_LOOP"
#: ``off`` turns group commit off (each publish and state write its own round trip): for
#: benchmarks and tests that compare the two, never needed in production
TETHER_GROUP_COMMIT = "TETHER_GROUP_COMMIT"
#: the pub/sub component service invocation travels on when the app has several
TETHER_INVOKE_PUBSUB = "TETHER_INVOKE_PUBSUB"


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(name)
    return value or None


def namespace() -> str | None:
    return get(NAMESPACE)


def app_id() -> str | None:
    """The app id ``tether run`` or ``tether worker`` gave this process, if any."""
    return get(TETHER_APP_ID) or get(APP_ID)


def set_app_id(app_id: str) -> None:
    """Give this process (and the processes it starts) an app id."""
    os.environ[TETHER_APP_ID] = os.environ[APP_ID] = app_id


def app_api_token() -> str | None:
    return get(APP_API_TOKEN)


def dapr_api_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The sidecar API token of ``environ`` (default: this process's environment)."""
    return get(DAPR_API_TOKEN, environ)


def data_dir() -> Path:
    """The embedded defaults' folder: ``TETHER_DATA_DIR``, else ``.tether`` (relative to the
    working directory)."""
    return Path(get(TETHER_DATA_DIR) or DEFAULT_DATA_DIR)


def use_uvloop() -> bool:
    """Whether Tether's own processes run on uvloop (the default where it is installed)."""
    return (get(TETHER_EVENT_LOOP) or "uvloop").lower() != "asyncio"


def group_commit() -> bool:
    """Whether concurrent publishes and state writes share round trips (the default)."""
    return (get(TETHER_GROUP_COMMIT) or "on").lower() not in ("off", "0", "false", "no")
