"""The app configuration: Dapr's ``Configuration`` resource given with ``tether run --config``.

Only its ``spec`` is kept; the blocks read the parts they implement (the secrets block reads
``spec.secrets.scopes``). Like daprd, one file holds one Configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tether.platform.errors import ConfigError

API_VERSION = "dapr.io/v1alpha1"


class AppConfigError(ConfigError):
    """A configuration file that cannot be used; the message names the file."""


def load_app_configuration(path: str | Path) -> dict[str, Any]:
    """The ``spec`` of the Configuration in ``path`` ({} when it has none)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AppConfigError(f"configuration {path}: cannot be read: {reason}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise AppConfigError(f"configuration {path}: invalid YAML: {exc}") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise AppConfigError(f"configuration {path}: must hold one Configuration resource")
    data = documents[0]
    if data.get("kind") != "Configuration":
        raise AppConfigError(
            f"configuration {path}: kind must be Configuration, not {data.get('kind')!r}"
        )
    if data.get("apiVersion") != API_VERSION:
        raise AppConfigError(
            f"configuration {path}: apiVersion must be {API_VERSION}, "
            f"not {data.get('apiVersion')!r}"
        )
    spec = data.get("spec")
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise AppConfigError(f"configuration {path}: spec must be a mapping")
    return spec
