"""``bindings.localstorage``: files under one directory, Dapr's create, get, list and delete.

``rootPath`` (required) is resolved once, symlinks included, and created at start. A
``fileName`` is a path relative to it; one that is absolute, has a ``..`` part or resolves
(through a symlink) outside the root is refused with a 400, where Dapr's secure join
silently clamps it into the root. File work runs in a thread, so a slow disk never stalls
the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from tether.platform.bindings.binding import (
    CREATE,
    DELETE,
    GET,
    LIST,
    Binding,
    BindingFailedError,
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
)
from tether.platform.components import Component, metadata

FILE_NAME = "fileName"
#: where Dapr refuses to put a root (kernel and secret mounts)
DISALLOWED_ROOTS = tuple(Path(p) for p in ("/proc", "/sys", "/boot", "/var/run/secrets"))


def _root(component: Component) -> Path:
    """``rootPath`` made absolute with its existing part's symlinks resolved, as Dapr does,
    so the containment check compares real paths."""
    value = metadata.required(component, "rootPath", "the directory files go in")
    root = Path(os.path.abspath(value)).resolve(strict=False)
    if root.exists() and not root.is_dir():
        raise metadata.MetadataError("rootPath", f"{value!r} is a file, not a directory")
    for bad in DISALLOWED_ROOTS:
        if root == bad or bad in root.parents:
            raise metadata.MetadataError("rootPath", f"{value!r} is in {bad}, which is not "
                                                     "allowed")
    return root


def _decode(data: bytes) -> bytes:
    """Dapr's create stores base64 text decoded (its way to write binary files): data that
    is valid padded base64 is decoded, anything else is written as it is."""
    try:
        return base64.b64decode(data.replace(b"\r", b"").replace(b"\n", b""), validate=True)
    except (binascii.Error, ValueError):
        return data


class LocalStorage:
    """The output side; every call is one file operation under :attr:`root`."""

    operations = frozenset({CREATE, GET, LIST, DELETE})

    def __init__(self, root: Path) -> None:
        self.root = root

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise BindingFailedError(f"cannot create rootPath {self.root}: {exc}") from exc

    async def close(self) -> None:
        pass

    def _path(self, name: str) -> Path:
        """The file ``name`` names under the root; BindingRequestError when it escapes."""
        parts = PurePosixPath(name.replace("\\", "/"))
        if parts.is_absolute() or ".." in parts.parts or "\0" in name:
            raise BindingRequestError(f"metadata {FILE_NAME} {name!r} must be a relative path "
                                      "inside rootPath (no '..', not absolute)")
        path = self.root.joinpath(*parts.parts)
        real = path.resolve(strict=False)
        if real != self.root and self.root not in real.parents:
            raise BindingRequestError(f"metadata {FILE_NAME} {name!r} leads outside rootPath "
                                      "(through a symlink)")
        return path

    def _named(self, request: BindingRequest) -> Path:
        name = request.metadata.get(FILE_NAME, "")
        if not name:
            raise BindingRequestError(f"metadata {FILE_NAME} is required for {request.operation}")
        return self._path(name)

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        try:
            if request.operation == CREATE:
                name = request.metadata.get(FILE_NAME) or str(uuid.uuid4())
                return await asyncio.to_thread(self._create, name, _decode(request.data))
            if request.operation == GET:
                return await asyncio.to_thread(self._get, self._named(request))
            if request.operation == DELETE:
                return await asyncio.to_thread(self._delete, self._named(request))
            if request.operation == LIST:
                name = request.metadata.get(FILE_NAME, "")
                return await asyncio.to_thread(self._list, self._path(name) if name else self.root)
        except FileNotFoundError as exc:
            raise BindingNotFoundError(f"file not found: {exc.filename}") from None
        except (IsADirectoryError, NotADirectoryError) as exc:
            raise BindingRequestError(f"{exc.strerror}: {exc.filename}") from None
        except OSError as exc:
            raise BindingFailedError(f"{request.operation} failed: {exc}") from exc
        raise BindingRequestError(f"unsupported operation {request.operation!r}")

    def _create(self, name: str, data: bytes) -> BindingResponse:
        path = self._path(name)
        if path == self.root:
            raise BindingRequestError(f"metadata {FILE_NAME} {name!r} names rootPath itself")
        path.parent.mkdir(parents=True, exist_ok=True)
        # written beside and renamed over: a reader never sees half a file
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        body = json.dumps({FILE_NAME: path.relative_to(self.root).as_posix()})
        return BindingResponse(data=body.encode(), content_type="application/json")

    def _get(self, path: Path) -> BindingResponse:
        return BindingResponse(data=path.read_bytes())

    def _delete(self, path: Path) -> BindingResponse:
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(21, "is a directory, not a file", str(path))
        path.unlink()
        return BindingResponse()

    def _list(self, directory: Path) -> BindingResponse:
        """Every file under ``directory`` (recursively) by its full path, as Dapr lists."""
        if not directory.exists():
            raise FileNotFoundError(2, "not found", str(directory))
        if not directory.is_dir():
            raise NotADirectoryError(20, "not a directory", str(directory))
        files = sorted(str(Path(top, name)) for top, _, names in os.walk(directory)
                       for name in names)
        return BindingResponse(data=json.dumps(files).encode(), content_type="application/json")


def build(component: Component) -> Binding:
    return Binding(name=component.name, type=component.type,
                   output=LocalStorage(_root(component)))
