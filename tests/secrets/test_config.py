"""The app configuration file: ``tether run --config FILE`` and a run file's configFilePath."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.cli.run import Sidecar, SidecarError, free_port
from tether.cli.run.runfile import parse_run_file
from tether.platform.components.appconfig import AppConfigError, load_app_configuration

CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: appconfig}
spec:
  secrets:
    scopes: [{storeName: local, defaultAccess: deny}]
"""


def test_the_spec_is_loaded(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG)
    assert load_app_configuration(file) == {
        "secrets": {"scopes": [{"storeName": "local", "defaultAccess": "deny"}]}
    }
    file.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\n")
    assert load_app_configuration(file) == {}


@pytest.mark.parametrize(("text", "problem"), [
    ("kind: Component\napiVersion: dapr.io/v1alpha1\n", "kind must be Configuration"),
    ("kind: Configuration\napiVersion: v2\n", "apiVersion must be dapr.io/v1alpha1"),
    ("kind: Configuration\napiVersion: dapr.io/v1alpha1\nspec: [1]\n", "spec must be a mapping"),
    ("a: [", "invalid YAML"),
    (CONFIG + "---\n" + CONFIG, "must hold one Configuration"),
])
def test_bad_files_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(text)
    with pytest.raises(AppConfigError, match=problem) as info:
        load_app_configuration(file)
    assert str(file) in str(info.value)
    with pytest.raises(AppConfigError, match="cannot be read"):
        load_app_configuration(tmp_path / "missing.yaml")


async def test_a_bad_configuration_stops_the_sidecar(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG.replace("deny", "sometimes"))
    sidecar = Sidecar("app", free_port(), config_file=file)
    with pytest.raises(SidecarError, match="defaultAccess must be allow or deny"):
        await sidecar.start()
    await sidecar.stop()


def test_run_file_config_file_path(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name / ".dapr").mkdir(parents=True)
    (tmp_path / "c" / ".dapr" / "config.yaml").write_text(CONFIG)
    data = {
        "version": 1,
        "common": {"configFilePath": "shared.yaml"},
        "apps": [
            {"appDirPath": "a", "configFilePath": "own.yaml"},
            {"appDirPath": "b"},
            {"appDirPath": "c", "configFilePath": ""},
        ],
    }
    specs = parse_run_file(data, tmp_path / "dapr.yaml")
    assert [s.config_file for s in specs] == [
        (tmp_path / "a" / "own.yaml").resolve(),
        (tmp_path / "shared.yaml").resolve(),
        (tmp_path / "shared.yaml").resolve(),
    ]
    del data["common"]
    specs = parse_run_file(data, tmp_path / "dapr.yaml")
    # without one, the app folder's .dapr/config.yaml when it exists (as dapr run -f)
    assert [s.config_file for s in specs] == [
        (tmp_path / "a" / "own.yaml").resolve(), None, tmp_path / "c" / ".dapr" / "config.yaml"
    ]
