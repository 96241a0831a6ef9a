"""The public facades stay light: importing them starts no HTTP server stack (the layer
contracts themselves are checked by lint-imports in ./scripts/test)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["tether", "tether.workflow"])
def test_importing_a_facade_loads_no_http_server(module: str) -> None:
    check = f"import sys, {module}; print('aiohttp.web' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_a_block_service_loads_no_http_server() -> None:
    check = ("import sys, tether.platform.state.service, tether.platform.lock.service, "
             "tether.platform.pubsub.publishing, tether.platform.workflows.durable.service; "
             "print('aiohttp.web' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_the_package_metadata_uses_an_spdx_license() -> None:
    # a TOML table made every install warn "project.license as a TOML table is deprecated"
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
