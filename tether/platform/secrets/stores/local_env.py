"""``secretstores.local.env``: secrets from the sidecar's environment variables.

As Dapr's component: secret ``NAME`` is the variable ``NAME`` and comes back as
``{"NAME": value}``; with the ``prefix`` metadata, ``NAME`` reads ``<prefix>NAME`` and the
bulk answer lists only the prefixed variables, prefix removed. Like Dapr, the store never
hands out ``APP_API_TOKEN`` or a ``DAPR_*`` variable, and Tether adds its own ``TETHER_*``.

Unlike Dapr (which answers an unset variable with an empty value), an unset or withheld
variable is "not found", so a typo shows up as 404 rather than as an empty password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tether.platform.components import Component, metadata
from tether.platform.secrets.stores.base import Secret, SecretNotFoundError, SecretText

TYPE = "secretstores.local.env"
WITHHELD_NAMES = ("APP_API_TOKEN", "TETHER_API_TOKEN")
WITHHELD_PREFIXES = ("DAPR_", "TETHER_")


def withheld(variable: str) -> bool:
    """Variables that configure the runtime itself, never served as secrets."""
    upper = variable.upper()
    return upper in WITHHELD_NAMES or upper.startswith(WITHHELD_PREFIXES)


class LocalEnvStore:
    """Reads the environment on every call, so it sees what the process has now."""

    def __init__(self, name: str, prefix: str = "", environ: Mapping[str, str] | None = None):
        self.name = name
        self.prefix = prefix
        self._environ = os.environ if environ is None else environ

    @classmethod
    def from_component(cls, component: Component) -> LocalEnvStore:
        return cls(component.name, metadata.text(component, "prefix") or "")

    async def get(self, name: str, metadata: Mapping[str, str]) -> Secret:
        variable = self.prefix + name
        value = self._environ.get(variable)
        if value is None or withheld(variable):
            raise SecretNotFoundError(self.name, name)
        return {name: SecretText(value)}

    async def bulk(self, metadata: Mapping[str, str]) -> dict[str, Secret]:
        out: dict[str, Secret] = {}
        for variable, value in self._environ.items():
            if not variable.startswith(self.prefix) or withheld(variable):
                continue
            name = variable[len(self.prefix):]
            if name:
                out[name] = {name: SecretText(value)}
        return out
