"""``bindings.azure.blobstorage``: an output binding on one Blob Storage container (Azure or
Azurite through ``endpoint``).

Operations as Dapr's component: ``create`` (``blobName`` request metadata, else a new UUID;
the content headers from ``contentType``, ``contentMD5``, ...; any other request metadata
becomes the blob's metadata), ``get`` (``includeMetadata``), ``delete``
(``deleteSnapshots``) and ``list`` (Dapr's options body). The client is azure-storage-blob's
asyncio one (the ``azure-blob`` extra), opened in :meth:`BlobOutput.start`, which also
creates the container as Dapr does unless ``disableEntityManagement`` is set. Shared-key
auth only: ``accountKey`` is required (no Microsoft Entra ID).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from tether.platform.bindings.binding import (
    CREATE,
    DELETE,
    GET,
    LIST,
    Binding,
    BindingError,
    BindingFailedError,
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
)
from tether.platform.components import Component, metadata
from tether.platform.components.metadata import MetadataError

#: Dapr's ``maxResults`` for ``list`` (also the service's own ceiling per page)
DEFAULT_MAX_RESULTS = 5000
#: Dapr's ``defaultBlobRetryCount``
DEFAULT_RETRY_COUNT = 3
#: how long connecting to the endpoint may take before a call fails
CONNECT_TIMEOUT = 5
#: Dapr's names for each field, first the documented one (older docs used the others)
_ACCOUNT_NAME = ("accountName", "storageAccount", "storageAccountName")
_ACCOUNT_KEY = ("accountKey", "storageAccessKey", "storageAccountKey")
_CONTAINER = ("containerName", "container", "storageContainerName")
_ENDPOINT = ("endpoint", "storageEndpoint")
_PUBLIC_ACCESS = {"none": None, "blob": "blob", "container": "container"}
_DELETE_SNAPSHOTS = ("include", "only")
#: request metadata that sets a content header instead of becoming blob metadata
_HEADERS = ("contenttype", "contentmd5", "contentencoding", "contentlanguage",
            "contentdisposition", "cachecontrol")
#: request metadata the operation itself reads, never stored on the blob
_OWN = {"blobname"}
_INCLUDE = {"copy": "copy", "metadata": "metadata", "snapshots": "snapshots",
            "uncommittedBlobs": "uncommittedblobs", "deleted": "deleted"}


def _first(component: Component, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = metadata.text(component, name)
        if value is not None:
            return value
    return None


@dataclass(frozen=True, slots=True)
class BlobSettings:
    """The component's metadata, read and checked once in :func:`build`."""

    account_name: str
    account_key: str
    container: str
    account_url: str
    decode_base64: bool
    retry_count: int
    public_access: str | None
    manage_container: bool

    @classmethod
    def from_component(cls, component: Component) -> BlobSettings:
        account = _first(component, _ACCOUNT_NAME)
        if account is None:
            raise MetadataError("accountName", "is required")
        key = _first(component, _ACCOUNT_KEY)
        if key is None:
            raise MetadataError("accountKey", "is required (Microsoft Entra ID auth is not "
                                              "supported)")
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise MetadataError("accountKey", "is not a base64 storage account key") from None
        container = _first(component, _CONTAINER)
        if container is None:
            raise MetadataError("containerName", "is required")
        endpoint = _first(component, _ENDPOINT)
        if endpoint is None:
            account_url = f"https://{account}.blob.core.windows.net"
        else:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise MetadataError("endpoint", f"{endpoint!r} must be a full URL like "
                                                "http://127.0.0.1:10000")
            # Azurite and custom domains take the account as the first path segment, as
            # Dapr builds it: <endpoint>/<account>/<container>
            account_url = f"{endpoint.rstrip('/')}/{account}"
        level = (metadata.text(component, "publicAccessLevel") or "none").lower()
        if level not in _PUBLIC_ACCESS:
            raise MetadataError("publicAccessLevel", f"{level!r} must be none, blob or "
                                                     "container")
        retries = metadata.integer(component, "getBlobRetryCount", minimum=0)
        if retries is None:
            retries = metadata.integer(component, "retryCount", minimum=0)
        return cls(
            account_name=account,
            account_key=key,
            container=container,
            account_url=account_url,
            decode_base64=metadata.boolean(component, "decodeBase64"),
            retry_count=DEFAULT_RETRY_COUNT if retries is None else retries,
            public_access=_PUBLIC_ACCESS[level],
            manage_container=not metadata.boolean(component, "disableEntityManagement"),
        )


def build(component: Component) -> Binding:
    return Binding(name=component.name, type=component.type,
                   output=BlobOutput(BlobSettings.from_component(component)))


def _lookup(meta: Mapping[str, str], name: str) -> str | None:
    """A request metadata value by name, any case; None when absent or empty."""
    wanted = name.lower()
    for key, value in meta.items():
        if key.lower() == wanted and value.strip():
            return value
    return None


def _blob_name(meta: Mapping[str, str]) -> str:
    name = _lookup(meta, "blobName")
    if name is None:
        raise BindingRequestError("blobName is a required attribute")
    return name


def _time(value: Any) -> str | None:
    """A timestamp as Go's encoding/json writes a time.Time (RFC 3339)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return None


def _sanitize(meta: Mapping[str, str]) -> dict[str, str]:
    """Blob metadata as Dapr stores it: keys of letters and digits only, ASCII values."""
    clean: dict[str, str] = {}
    for key, value in meta.items():
        name = "".join(c for c in key if c.isascii() and c.isalnum())
        if name:
            clean[name] = "".join(c for c in value if c.isascii() and c != "\0")
    return clean


class BlobOutput:
    """The output side: one ContainerClient for the component's life."""

    operations = frozenset({CREATE, GET, DELETE, LIST})

    def __init__(self, settings: BlobSettings) -> None:
        self.settings = settings
        self._container: Any = None

    async def start(self) -> None:
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob.aio import ContainerClient

        s = self.settings
        client = ContainerClient(
            s.account_url, s.container,
            credential=AzureNamedKeyCredential(s.account_name, s.account_key),
            retry_total=s.retry_count, connection_timeout=CONNECT_TIMEOUT,
        )
        async def ensure() -> None:
            if not s.manage_container:
                await client.get_container_properties()
                return
            try:
                await client.create_container(public_access=s.public_access)
            except ResourceExistsError:
                pass

        try:
            await self._call(ensure(), f"opening container {s.container!r}")
        except BindingError as exc:
            await client.close()
            if isinstance(exc, BindingFailedError):
                raise
            # at start, any refusal (a bad container name) is the component's, not a caller's
            raise BindingFailedError(str(exc)) from exc.__cause__
        except BaseException:
            await client.close()
            raise
        self._container = client

    async def close(self) -> None:
        client, self._container = self._container, None
        if client is not None:
            await client.close()

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        if self._container is None:
            raise BindingFailedError("the Azure Blob Storage binding is not started")
        if request.operation == CREATE:
            return await self._create(request)
        if request.operation == GET:
            return await self._get(request)
        if request.operation == DELETE:
            return await self._delete(request)
        if request.operation == LIST:
            return await self._list(request)
        raise BindingRequestError(f"unsupported operation {request.operation!r}")

    async def _create(self, request: BindingRequest) -> BindingResponse:
        from azure.storage.blob import ContentSettings

        name = _lookup(request.metadata, "blobName") or str(uuid.uuid4())
        headers: dict[str, str] = {}
        stored: dict[str, str] = {}
        for key, value in request.metadata.items():
            lowered = key.lower()
            if lowered in _HEADERS:
                if value:
                    headers[lowered] = value
            elif lowered not in _OWN:
                stored[key] = value
        md5: bytes | None = None
        if "contentmd5" in headers:
            try:
                md5 = base64.b64decode(headers["contentmd5"], validate=True)
            except (binascii.Error, ValueError):
                md5 = None
            if md5 is None or len(md5) != 16:
                raise BindingRequestError("the MD5 value specified in Content MD5 is invalid, "
                                          "MD5 value must be 128 bits and base64 encoded")
        data = request.data
        if self.settings.decode_base64:
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise BindingRequestError("data is not valid base64 (decodeBase64 is set)") \
                    from None
        settings = ContentSettings(
            content_type=headers.get("contenttype"),
            content_encoding=headers.get("contentencoding"),
            content_language=headers.get("contentlanguage"),
            content_disposition=headers.get("contentdisposition"),
            cache_control=headers.get("cachecontrol"),
            content_md5=bytearray(md5) if md5 is not None else None,
        )
        # the MD5 also goes as the transactional Content-MD5, so the service checks it
        extra = {"headers": {"Content-MD5": headers["contentmd5"]}} if md5 else {}
        blob = self._container.get_blob_client(name)
        await self._call(blob.upload_blob(data, overwrite=True, content_settings=settings,
                                          metadata=_sanitize(stored), **extra),
                         f"uploading blob {name!r}")
        url: str = blob.url
        return BindingResponse(
            data=json.dumps({"blobURL": url, "blobName": name}).encode(),
            metadata={"blobURL": url, "blobName": name},
            content_type="application/json",
        )

    async def _get(self, request: BindingRequest) -> BindingResponse:
        name = _blob_name(request.metadata)
        include = _lookup(request.metadata, "includeMetadata")
        if include is not None and include.strip().lower() not in ("true", "t", "1", "false",
                                                                   "f", "0"):
            raise BindingRequestError(f"metadata includeMetadata {include!r} must be true or "
                                      "false")
        blob = self._container.get_blob_client(name)
        stream = await self._call(blob.download_blob(), f"downloading blob {name!r}", name)
        data: bytes = await self._call(stream.readall(), f"downloading blob {name!r}", name)
        properties = stream.properties
        meta: dict[str, str] = {}
        if metadata.is_truthy(include):
            meta = dict(properties.metadata or {})
        return BindingResponse(data=data, metadata=meta,
                               content_type=properties.content_settings.content_type)

    async def _delete(self, request: BindingRequest) -> BindingResponse:
        name = _blob_name(request.metadata)
        snapshots = _lookup(request.metadata, "deleteSnapshots")
        if snapshots is not None and snapshots not in _DELETE_SNAPSHOTS:
            raise BindingRequestError(f"invalid delete snapshot option type: {snapshots}; "
                                      f"allowed: {', '.join(_DELETE_SNAPSHOTS)}")
        blob = self._container.get_blob_client(name)
        await self._call(blob.delete_blob(delete_snapshots=snapshots),
                         f"deleting blob {name!r}", name)
        return BindingResponse()

    async def _list(self, request: BindingRequest) -> BindingResponse:
        options: dict[str, Any] = {}
        if request.data.strip():
            try:
                options = json.loads(request.data)
            except ValueError:
                raise BindingRequestError("list data must be a JSON object like "
                                          '{"maxResults": 10, "prefix": "a/"}') from None
            if not isinstance(options, dict):
                raise BindingRequestError("list data must be a JSON object")
        max_results = options.get("maxResults") or 0
        if not isinstance(max_results, int) or isinstance(max_results, bool):
            raise BindingRequestError("list maxResults must be a whole number")
        if max_results < 1:
            max_results = DEFAULT_MAX_RESULTS
        text: dict[str, str | None] = {}
        for field in ("prefix", "marker"):
            value = options.get(field)
            if value is not None and not isinstance(value, str):
                raise BindingRequestError(f"list {field} must be a string")
            text[field] = value or None
        wanted = options.get("include") or {}
        if not isinstance(wanted, dict) or any(not isinstance(v, bool) for v in wanted.values()):
            raise BindingRequestError('list include must be an object of booleans like '
                                      '{"metadata": true}')
        include = [_INCLUDE[k] for k, on in wanted.items() if on and k in _INCLUDE]
        pages = self._container.list_blobs(
            name_starts_with=text["prefix"], include=include or None,
            results_per_page=max_results,
        ).by_page(continuation_token=text["marker"])
        blobs: list[dict[str, Any]] = []
        traversed = 0
        marker = ""

        async def read() -> None:
            nonlocal traversed, marker
            async for page in pages:
                traversed += 1
                async for item in page:
                    blobs.append(_item(item))
                marker = pages.continuation_token or ""
                if len(blobs) >= max_results:
                    break

        await self._call(read(), "listing blobs")
        return BindingResponse(
            data=json.dumps(blobs).encode(),
            metadata={"marker": marker, "number": str(len(blobs)),
                      "pagesTraversed": str(traversed)},
            content_type="application/json",
        )

    async def _call(self, awaitable: Any, what: str, blob: str | None = None) -> Any:
        """Await one SDK call with its errors turned into binding errors."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        try:
            return await awaitable
        except ResourceNotFoundError as exc:
            if blob is not None and getattr(exc, "error_code", None) in (None, "BlobNotFound"):
                raise BindingNotFoundError(f"blob {blob!r} not found") from exc
            raise BindingFailedError(f"{what} failed: {_message(exc)}") from exc
        except ClientAuthenticationError as exc:
            raise BindingFailedError(f"{what} failed (check accountName and accountKey): "
                                     f"{_message(exc)}") from exc
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 403:
                raise BindingFailedError(f"{what} failed (check accountName and accountKey): "
                                         f"{_message(exc)}") from exc
            if 400 <= status < 500:
                raise BindingRequestError(f"{what}: {_message(exc)}") from exc
            raise BindingFailedError(f"{what} failed: {_message(exc)}") from exc
        except AzureError as exc:  # connection refused, timeouts
            raise BindingFailedError(f"{what} failed: {_message(exc)}") from exc
        except Exception as exc:  # aiohttp's own, should one get past the SDK
            raise BindingFailedError(f"{what} failed: {exc!r}") from exc


def _message(exc: Exception) -> str:
    """The SDK error's first line (its full text repeats the whole response)."""
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # a StorageErrorCode member: its wire name
    first = (str(getattr(exc, "message", None) or exc).splitlines() or [""])[0]
    return f"{code}: {first}" if code else first


def _item(blob: Any) -> dict[str, Any]:
    """One listed blob with the Go SDK's field names (container.BlobItem), as Dapr
    marshals it."""
    content = blob.content_settings
    md5 = content.content_md5
    lease = blob.lease
    return {
        "Name": blob.name,
        "Deleted": bool(blob.deleted),
        "Snapshot": blob.snapshot or "",
        "VersionID": blob.version_id,
        "IsCurrentVersion": blob.is_current_version,
        "Metadata": dict(blob.metadata) if blob.metadata else None,
        "Properties": {
            "CreationTime": _time(blob.creation_time),
            "LastModified": _time(blob.last_modified),
            "ETag": blob.etag,
            "ContentLength": blob.size,
            "ContentType": content.content_type,
            "ContentEncoding": content.content_encoding,
            "ContentLanguage": content.content_language,
            "ContentDisposition": content.content_disposition,
            "CacheControl": content.cache_control,
            "ContentMD5": base64.b64encode(bytes(md5)).decode() if md5 else None,
            "BlobType": str(blob.blob_type.value if hasattr(blob.blob_type, "value")
                            else blob.blob_type) if blob.blob_type else None,
            "AccessTier": blob.blob_tier,
            "LeaseStatus": lease.status if lease else None,
            "LeaseState": lease.state if lease else None,
            "ServerEncrypted": blob.server_encrypted,
        },
    }
