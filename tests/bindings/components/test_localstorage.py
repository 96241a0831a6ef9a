"""bindings.localstorage on a real directory (tmp_path)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.bindings.components.yaml_a import build, output
from tether.platform.bindings.binding import (
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
)
from tether.platform.bindings.components.localstorage import LocalStorage
from tether.platform.bindings.registry import BindingConfigError


async def storage(root: Path) -> LocalStorage:
    built = output("bindings.localstorage", rootPath=str(root))
    assert isinstance(built, LocalStorage)
    await built.start()
    return built


async def test_root_is_created_at_start_not_at_build(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    built = output("bindings.localstorage", rootPath=str(root))
    assert not root.exists()
    await built.start()
    assert root.is_dir()


async def test_create_get_list_delete(tmp_path: Path) -> None:
    files = await storage(tmp_path)
    created = await files.invoke(BindingRequest("create", b"hello world",
                                                {"fileName": "dir/one.txt"}))
    assert created.data is not None and json.loads(created.data) == {"fileName": "dir/one.txt"}
    assert (tmp_path / "dir" / "one.txt").read_bytes() == b"hello world"

    got = await files.invoke(BindingRequest("get", metadata={"fileName": "dir/one.txt"}))
    assert got.data == b"hello world"

    listed = await files.invoke(BindingRequest("list"))
    assert listed.data is not None
    assert json.loads(listed.data) == [str(tmp_path / "dir" / "one.txt")]
    sub = await files.invoke(BindingRequest("list", metadata={"fileName": "dir"}))
    assert sub.data is not None and json.loads(sub.data) == [str(tmp_path / "dir" / "one.txt")]

    deleted = await files.invoke(BindingRequest("delete", metadata={"fileName": "dir/one.txt"}))
    assert not deleted.data
    assert not (tmp_path / "dir" / "one.txt").exists()
    with pytest.raises(BindingNotFoundError):
        await files.invoke(BindingRequest("get", metadata={"fileName": "dir/one.txt"}))
    with pytest.raises(BindingNotFoundError):
        await files.invoke(BindingRequest("delete", metadata={"fileName": "dir/one.txt"}))


async def test_create_without_a_name_makes_a_uuid_file(tmp_path: Path) -> None:
    files = await storage(tmp_path)
    created = await files.invoke(BindingRequest("create", b"x y"))
    assert created.data is not None
    name = json.loads(created.data)["fileName"]
    assert len(name) == 36 and (tmp_path / name).read_bytes() == b"x y"


async def test_base64_data_is_stored_decoded_as_dapr_does(tmp_path: Path) -> None:
    files = await storage(tmp_path)
    raw = bytes(range(256))
    await files.invoke(BindingRequest("create", base64.b64encode(raw), {"fileName": "bin"}))
    assert (tmp_path / "bin").read_bytes() == raw


async def test_create_of_the_root_itself_is_refused(tmp_path: Path) -> None:
    files = await storage(tmp_path)
    with pytest.raises(BindingRequestError, match="rootPath itself"):
        await files.invoke(BindingRequest("create", b"x", {"fileName": "."}))


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/etc/passwd",
                                  "link/escape.txt"])
async def test_names_that_escape_the_root_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "link").symlink_to(outside)
    files = await storage(root)
    for operation in ("create", "get", "delete", "list"):
        with pytest.raises(BindingRequestError, match="fileName"):
            await files.invoke(BindingRequest(operation, b"x", {"fileName": name}))
    assert not (tmp_path / "escape.txt").exists()
    assert list(outside.iterdir()) == []


async def test_get_and_delete_need_a_file_name(tmp_path: Path) -> None:
    files = await storage(tmp_path)
    for operation in ("get", "delete"):
        with pytest.raises(BindingRequestError, match="fileName is required"):
            await files.invoke(BindingRequest(operation))
    await files.invoke(BindingRequest("list"))  # the root is still there


async def test_list_of_a_missing_directory_is_not_found(tmp_path: Path) -> None:
    files = await storage(tmp_path)
    with pytest.raises(BindingNotFoundError):
        await files.invoke(BindingRequest("list", metadata={"fileName": "nope"}))


def test_root_path_is_required_and_checked(tmp_path: Path) -> None:
    with pytest.raises(BindingConfigError, match="rootPath is required"):
        build("bindings.localstorage", somethingElse="x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BindingConfigError, match=r"rootPath .* is a file"):
        build("bindings.localstorage", rootPath=str(tmp_path / "file"))
    with pytest.raises(BindingConfigError, match=r"rootPath .* not allowed"):
        build("bindings.localstorage", rootPath="/proc/self")


def test_only_the_output_side() -> None:
    built = build("bindings.localstorage", rootPath="/tmp/x-never-created")
    assert built.input is None and built.output is not None
    assert built.output.operations == {"create", "get", "list", "delete"}
