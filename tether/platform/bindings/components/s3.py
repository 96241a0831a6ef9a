"""``bindings.aws.s3``: an output binding on one S3 bucket (AWS, MinIO, moto, any S3 API).

Operations as Dapr's component: ``create`` (``key`` request metadata, else a new UUID;
``presignTTL`` also answers a presigned GET URL), ``get``, ``delete``, ``list`` (Dapr's
``{"maxResults", "prefix", "marker", "delimiter"}`` body, the answer shaped like the Go SDK's
``ListObjectsOutput``) and ``presign``. The client is aiobotocore (the ``s3`` extra), opened
in :meth:`S3Output.start`; the bucket is not created (Dapr does not either).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
from tether.platform.components.metadata import DurationError, MetadataError, parse_duration

PRESIGN = "presign"
#: Dapr's ``defaultMaxResults`` for ``list``
DEFAULT_MAX_RESULTS = 1000
#: how long connecting to the endpoint may take before a call fails
CONNECT_TIMEOUT = 5.0
#: how long one S3 answer may take (big objects stream within it)
READ_TIMEOUT = 60.0
#: attempts per call on a throttled or broken connection (botocore's standard mode)
MAX_ATTEMPTS = 3

# S3 error codes that mean "no such object" (HeadObject answers a bare 404)
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
# codes of a component set up wrong (credentials, bucket), not of a caller's request
_SETUP = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
          "ExpiredToken", "InvalidToken", "AllAccessDisabled", "PermanentRedirect",
          "AuthorizationHeaderMalformed"}


@dataclass(frozen=True, slots=True)
class S3Settings:
    """The component's metadata, read and checked once in :func:`build`."""

    bucket: str
    region: str | None
    endpoint: str | None
    access_key: str | None
    secret_key: str | None
    session_token: str | None
    force_path_style: bool
    decode_base64: bool
    encode_base64: bool
    insecure_ssl: bool
    storage_class: str | None

    @classmethod
    def from_component(cls, component: Component) -> S3Settings:
        disable_ssl = metadata.boolean(component, "disableSSL")
        endpoint = metadata.text(component, "endpoint")
        if endpoint is not None:
            if "://" not in endpoint:
                # Dapr's examples give a bare host (s3.us-west-2.amazonaws.com)
                endpoint = f"{'http' if disable_ssl else 'https'}://{endpoint}"
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise MetadataError("endpoint", f"{endpoint!r} is not an http(s) URL or host")
            if disable_ssl and parts.scheme == "https":
                endpoint = urlunsplit(parts._replace(scheme="http"))
        access_key = metadata.text(component, "accessKey")
        secret_key = metadata.text(component, "secretKey")
        if (access_key is None) != (secret_key is None):
            missing = "secretKey" if secret_key is None else "accessKey"
            raise MetadataError(missing, "is required with "
                                f"{'accessKey' if missing == 'secretKey' else 'secretKey'} "
                                "(or set neither to use the AWS default credentials)")
        return cls(
            bucket=metadata.required(component, "bucket"),
            region=metadata.text(component, "region") or metadata.text(component, "awsRegion"),
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            session_token=metadata.text(component, "sessionToken"),
            force_path_style=metadata.boolean(component, "forcePathStyle"),
            decode_base64=metadata.boolean(component, "decodeBase64"),
            encode_base64=metadata.boolean(component, "encodeBase64"),
            insecure_ssl=metadata.boolean(component, "insecureSSL"),
            storage_class=metadata.text(component, "storageClass"),
        )


def build(component: Component) -> Binding:
    return Binding(name=component.name, type=component.type,
                   output=S3Output(S3Settings.from_component(component)))


def _lookup(meta: Mapping[str, str], name: str) -> str | None:
    """A request metadata value by name, any case; None when absent or empty."""
    wanted = name.lower()
    for key, value in meta.items():
        if key.lower() == wanted and value.strip():
            return value.strip()
    return None


def _flag(meta: Mapping[str, str], name: str, default: bool) -> bool:
    """A per-call flag as Dapr merges it: present -> truthy or not, absent -> the component's."""
    value = _lookup(meta, name)
    return default if value is None else metadata.is_truthy(value)


def _ttl(meta: Mapping[str, str]) -> int | None:
    """``presignTTL`` (a Go duration such as ``15m``) in whole seconds, None when absent."""
    value = _lookup(meta, "presignTTL")
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise BindingRequestError(f"metadata presignTTL {exc}") from None
    if seconds < 1:
        raise BindingRequestError(f"metadata presignTTL {value!r} must be at least 1s")
    return int(seconds)


def _key(meta: Mapping[str, str]) -> str:
    key = _lookup(meta, "key")
    if key is None:
        raise BindingRequestError("required metadata 'key' missing")
    return key


def _time(value: Any) -> str | None:
    """A timestamp as Go's encoding/json writes a time.Time (RFC 3339)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return None


class S3Output:
    """The output side: one aiobotocore client for the component's life."""

    operations = frozenset({CREATE, GET, DELETE, LIST, PRESIGN})

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def start(self) -> None:
        from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
        from aiobotocore.session import get_session  # type: ignore[import-untyped]

        s = self.settings
        config = AioConfig(
            connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            s3={"addressing_style": "path" if s.force_path_style else "auto"},
            signature_version="s3v4",  # presigned URLs as AWS's SDKs sign them today
        )
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(get_session().create_client(
                "s3", region_name=s.region, endpoint_url=s.endpoint,
                aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key,
                aws_session_token=s.session_token, verify=not s.insecure_ssl, config=config,
            ))
            self._stack = stack
            # reachable, credentials good and the bucket there: a 403 means no ListBucket
            # permission, which a put/get-only policy may well lack
            await self._call("head_bucket", {"Bucket": s.bucket}, allow_forbidden=True)
        except BaseException:
            self._client = None
            self._stack = None
            await stack.aclose()
            raise

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        if self._client is None:
            raise BindingFailedError("the S3 binding is not started")
        if request.operation == CREATE:
            return await self._create(request)
        if request.operation == GET:
            return await self._get(request)
        if request.operation == DELETE:
            await self._call("delete_object", {"Bucket": self.settings.bucket,
                                               "Key": _key(request.metadata)})
            return BindingResponse()
        if request.operation == LIST:
            return await self._list(request)
        if request.operation == PRESIGN:
            return await self._presign(request)
        raise BindingRequestError(f"unsupported operation {request.operation!r}")

    async def _create(self, request: BindingRequest) -> BindingResponse:
        meta = request.metadata
        key = _lookup(meta, "key") or str(uuid.uuid4())
        ttl = _ttl(meta)  # checked before the upload, so a bad TTL writes nothing
        data = request.data
        if _flag(meta, "decodeBase64", self.settings.decode_base64):
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise BindingRequestError("data is not valid base64 (decodeBase64 is set)") \
                    from None
        params: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": key, "Body": data}
        content_type = _lookup(meta, "Content-Type")
        if content_type is not None:
            params["ContentType"] = content_type
        storage_class = _lookup(meta, "storageClass") or self.settings.storage_class
        if storage_class is not None:
            params["StorageClass"] = storage_class
        answer = await self._call("put_object", params)
        body: dict[str, Any] = {"location": await self._location(key),
                                "versionID": answer.get("VersionId")}
        if ttl is not None:
            body["presignURL"] = await self._presign_url(key, ttl)
        return BindingResponse(data=json.dumps(body).encode(), metadata={"key": key},
                               content_type="application/json")

    async def _get(self, request: BindingRequest) -> BindingResponse:
        key = _key(request.metadata)
        answer = await self._call("get_object", {"Bucket": self.settings.bucket, "Key": key})
        try:
            async with answer["Body"] as stream:
                data: bytes = await stream.read()
        except Exception as exc:  # the connection broke mid-body
            raise BindingFailedError(f"S3 get of {key!r} failed while reading: {exc}") from exc
        if _flag(request.metadata, "encodeBase64", self.settings.encode_base64):
            return BindingResponse(data=base64.b64encode(data), content_type="text/plain")
        return BindingResponse(data=data, content_type=answer.get("ContentType"))

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
        params: dict[str, Any] = {
            "Bucket": self.settings.bucket,
            "MaxKeys": max_results if max_results >= 1 else DEFAULT_MAX_RESULTS,
        }
        for field, param in (("marker", "Marker"), ("prefix", "Prefix"),
                             ("delimiter", "Delimiter")):
            value = options.get(field)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise BindingRequestError(f"list {field} must be a string")
            params[param] = value
        answer = await self._call("list_objects", params)
        body = {
            "CommonPrefixes": [{"Prefix": p.get("Prefix")} for p in answer["CommonPrefixes"]]
            if answer.get("CommonPrefixes") else None,
            "Contents": [_object(item) for item in answer["Contents"]]
            if answer.get("Contents") else None,
            "Delimiter": answer.get("Delimiter", params.get("Delimiter", "")),
            "EncodingType": answer.get("EncodingType"),
            "IsTruncated": answer.get("IsTruncated", False),
            "Marker": answer.get("Marker", params.get("Marker", "")),
            "MaxKeys": answer.get("MaxKeys", params["MaxKeys"]),
            "Name": answer.get("Name", self.settings.bucket),
            "NextMarker": answer.get("NextMarker"),
            "Prefix": answer.get("Prefix", params.get("Prefix", "")),
            "RequestCharged": answer.get("RequestCharged"),
        }
        return BindingResponse(data=json.dumps(body).encode(), content_type="application/json")

    async def _presign(self, request: BindingRequest) -> BindingResponse:
        key = _key(request.metadata)
        ttl = _ttl(request.metadata)
        if ttl is None:
            raise BindingRequestError("required metadata 'presignTTL' missing")
        url = await self._presign_url(key, ttl)
        return BindingResponse(data=json.dumps({"presignURL": url}).encode(),
                               content_type="application/json")

    async def _presign_url(self, key: str, ttl: int) -> str:
        try:
            url: str = await self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.settings.bucket, "Key": key},
                ExpiresIn=ttl)
        except Exception as exc:  # botocore: no credentials to sign with
            raise BindingFailedError(f"S3 presign of {key!r} failed: {exc}") from exc
        return url

    async def _location(self, key: str) -> str:
        """The object's URL as botocore addresses it (path or virtual host), the
        ``location`` Dapr's uploader answers: a presigned URL without its query."""
        parts = urlsplit(await self._presign_url(key, 60))
        return urlunsplit(parts._replace(query=""))

    async def _call(self, method: str, params: dict[str, Any],
                    allow_forbidden: bool = False) -> Any:
        """One client call with botocore's errors turned into binding errors."""
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        key = params.get("Key")
        what = f"{method} of {key!r}" if key is not None else method
        try:
            return await getattr(self._client, method)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            message = error.get("Message") or code
            if allow_forbidden and status == 403:
                return {}
            if code in _NOT_FOUND and key is not None:
                raise BindingNotFoundError(f"object {key!r} not found") from None
            if code == "NoSuchBucket" or (code in _NOT_FOUND and key is None):
                raise BindingFailedError(
                    f"S3 bucket {self.settings.bucket!r} does not exist") from None
            if 400 <= status < 500 and code not in _SETUP:
                raise BindingRequestError(f"S3 {what}: {code}: {message}") from None
            raise BindingFailedError(f"S3 {what} failed: {code}: {message}") from None
        except BotoCoreError as exc:
            raise BindingFailedError(f"S3 {what} failed: {exc}") from exc
        except Exception as exc:  # aiohttp's own, should one get past aiobotocore
            raise BindingFailedError(f"S3 {what} failed: {exc!r}") from exc


def _object(item: Mapping[str, Any]) -> dict[str, Any]:
    """One ``Contents`` entry with the Go SDK's field names, as Dapr marshals it."""
    owner = item.get("Owner")
    return {
        "ChecksumAlgorithm": item.get("ChecksumAlgorithm"),
        "ETag": item.get("ETag"),
        "Key": item.get("Key"),
        "LastModified": _time(item.get("LastModified")),
        "Owner": {"DisplayName": owner.get("DisplayName"), "ID": owner.get("ID")}
        if owner else None,
        "RestoreStatus": item.get("RestoreStatus"),
        "Size": item.get("Size"),
        "StorageClass": item.get("StorageClass"),
    }
