"""Read Dapr resource YAML from one or more folders into typed, validated objects.

Like daprd's disk loader: every ``*.yaml`` / ``*.yml`` directly inside each folder (not
sub-folders), files in name order, several documents per file. Unlike daprd, which logs bad
manifests and carries on, a bad Component or Subscription stops the load with a
:class:`ResourceError`: a component that silently fails to load surfaces much later as a
confusing 404. Kinds Tether does not load yet are kept as :class:`OtherResource`; so is a
component of any type, unless the caller passes the types its blocks build.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tether.platform import env
from tether.platform.components.metadata import DurationError, parse_duration
from tether.platform.components.model import (
    TOPIC_SCOPE_KEYS,
    Component,
    Fields,
    MetadataValue,
    OtherResource,
    ResourceError,
    SecretKeyRef,
    Source,
    TopicScopeError,
    TopicScopes,
    scalar_text,
)
from tether.platform.components.registry import ComponentTypes, unsupported_type
from tether.platform.components.subscriptions import API_VERSIONS as SUBSCRIPTION_API_VERSIONS
from tether.platform.components.subscriptions import Subscription, parse_subscription

log = logging.getLogger(__name__)

COMPONENT_API_VERSION = "dapr.io/v1alpha1"
YAML_SUFFIXES = (".yaml", ".yml")
DEFAULT_INIT_TIMEOUT = 5.0

#: the component used when no resources path is given: the embedded durable broker, its
#: file in the embedded defaults' folder (:func:`default_broker_path`)
DEFAULT_COMPONENTS_YAML = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.tether.embedded
  version: v1
  metadata:
    - name: path
      value: {path}
"""
DEFAULT_BROKER_FILE = "broker.db"


@dataclass(frozen=True, slots=True)
class Templates:
    """Values for the template tags Dapr resolves in component metadata at startup."""

    app_id: str
    namespace: str = "default"
    pod_name: str = field(default_factory=socket.gethostname)

    def render(self, value: str) -> str:
        # one pass, so a substituted value is never scanned again; each {uuid} is a new one
        return _TAG.sub(self._replace, value) if "{" in value else value

    def _replace(self, match: re.Match[str]) -> str:
        tag = match.group(1)
        if tag == "uuid":
            return str(uuid.uuid4())
        if tag == "podName":
            return self.pod_name
        if tag == "namespace":
            return f"{self.namespace}.{self.app_id}"  # Dapr joins namespace and app id
        return self.app_id


_TAG = re.compile(r"\{(uuid|podName|namespace|appID)\}")


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything loaded from the resources folders, in load order."""

    components: tuple[Component, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    others: tuple[OtherResource, ...] = ()

    def components_for(self, app_id: str) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.visible_to(app_id))

    def subscriptions_for(self, app_id: str) -> tuple[Subscription, ...]:
        return tuple(s for s in self.subscriptions if s.visible_to(app_id))

    def component(self, name: str, app_id: str) -> Component | None:
        """The component ``name`` as ``app_id`` sees it (at most one, duplicates are refused)."""
        return next((c for c in self.components_for(app_id) if c.name == name), None)


def load_resources(
    paths: str | Path | Iterable[str | Path] | None,
    app_id: str,
    *,
    namespace: str | None = None,
    pod_name: str | None = None,
    types: Iterable[ComponentTypes[..., Any]] | None = None,
) -> Resources:
    """Load every resource file in ``paths`` (folders, or single files) for ``app_id``.

    With no paths, the embedded defaults are returned. ``namespace`` defaults to the
    ``NAMESPACE`` environment variable, then ``default`` (as daprd in self-hosted mode);
    ``pod_name`` defaults to the host name. With ``types`` (the blocks' component types,
    as the sidecar passes them), a component of a type none of them builds is a
    ResourceError naming its file and type; without, any type is kept.
    """
    known = None if types is None else list(types)
    folders = [] if paths is None else [paths] if isinstance(paths, str | Path) else list(paths)
    if not folders:
        return Resources(components=default_components(app_id))
    templates = Templates(
        app_id,
        namespace or env.namespace() or "default",
        pod_name or socket.gethostname(),
    )
    components: list[Component] = []
    subscriptions: list[Subscription] = []
    others: list[OtherResource] = []
    for file in _resource_files(folders):
        text = _read(file)
        for item in load_documents(text, str(file), templates):
            if isinstance(item, Component):
                _check_type(item, known)
                _check_unique(item, components)
                components.append(item)
            elif isinstance(item, Subscription):
                subscriptions.append(item)
            else:
                others.append(item)
    return Resources(tuple(components), tuple(subscriptions), tuple(others))


def default_broker_path() -> Path:
    """The embedded default broker's file, in ``env.data_dir()`` (``TETHER_DATA_DIR``)."""
    return env.data_dir() / DEFAULT_BROKER_FILE


def default_components(app_id: str) -> tuple[Component, ...]:
    """The embedded pub/sub ``pubsub`` (``pubsub.tether.embedded``) used without resources."""
    # a JSON string is a YAML scalar: any folder name reads back as written
    path = json.dumps(str(default_broker_path()))
    text = DEFAULT_COMPONENTS_YAML.format(path=path)
    items = load_documents(text, "<embedded defaults>", Templates(app_id))
    return tuple(c for c in items if isinstance(c, Component))


def load_documents(
    text: str, file: str, templates: Templates
) -> list[Component | Subscription | OtherResource]:
    """Parse every document of one YAML text; ``file`` is only used in error messages."""
    out: list[Component | Subscription | OtherResource] = []
    for index, data in _documents(text, file):
        source = Source(file, index)
        if data is None:
            continue  # an empty document, e.g. after a trailing ---
        if not isinstance(data, dict):
            raise source.error(
                None, "the document is not a mapping of apiVersion, kind, metadata, spec"
            )
        item = _parse_document(Fields(data, "", source), templates)
        if isinstance(item, OtherResource):
            log.debug("%s: %s %r is not loaded yet", source, item.kind, item.name)
        out.append(item)
    return out


def _documents(text: str, file: str) -> Iterator[tuple[int, Any]]:
    index = 0
    try:
        for index, data in enumerate(yaml.safe_load_all(text), start=1):
            yield index, data
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ResourceError(file, f"invalid YAML{line}: {problem}", document=index + 1) from exc


def _parse_document(doc: Fields, templates: Templates) -> Component | Subscription | OtherResource:
    kind = doc.required_text("kind")
    api_version = doc.text("apiVersion") or ""
    meta = doc.child("metadata")
    if kind not in ("Component", "Subscription"):
        name = meta.text("name") if meta is not None else None
        return OtherResource(kind, api_version, name, doc.source, doc.data)
    if meta is None:
        raise doc.error("metadata.name", "is required")
    name = meta.required_text("name")
    if name in (".", "..") or "/" in name or "%" in name:
        raise meta.error("name", f"{name!r} is not a valid name (no '/', '%', '.' or '..')")
    namespace = meta.text("namespace") or None
    if kind == "Subscription":
        if api_version not in SUBSCRIPTION_API_VERSIONS:
            supported = " or ".join(SUBSCRIPTION_API_VERSIONS)
            raise doc.error(
                "apiVersion", f"{api_version!r} is not supported for Subscription; use {supported}"
            )
        return parse_subscription(doc, api_version, name, namespace)
    if api_version != COMPONENT_API_VERSION:
        raise doc.error(
            "apiVersion",
            f"{api_version!r} is not supported for Component; use {COMPONENT_API_VERSION}",
        )
    return _parse_component(doc, name, namespace, templates)


def _parse_component(
    doc: Fields, name: str, namespace: str | None, templates: Templates
) -> Component:
    spec = doc.child("spec")
    if spec is None:
        raise doc.error("spec.type", "is required")
    # an unknown type is kept as a string: the component registry decides when it builds it
    type_ = spec.required_text("type")
    metadata = _component_metadata(spec, templates)
    auth = doc.child("auth")
    timeout = spec.text("initTimeout")
    return Component(
        name=name,
        type=type_,
        version=spec.text("version") or "v1",
        metadata=metadata,
        namespace=namespace,
        init_timeout=DEFAULT_INIT_TIMEOUT
        if timeout is None
        else _duration(spec, "initTimeout", timeout),
        ignore_errors=spec.boolean("ignoreErrors", False),
        scopes=doc.texts("scopes"),
        # Dapr spells it auth.secretStore; its own docs sometimes write secretstore
        secret_store=(auth.text("secretStore") or auth.text("secretstore")) if auth else None,
        topic_scopes=_topic_scopes(spec, metadata) if type_.startswith("pubsub.") else None,
        source=doc.source,
    )


def _component_metadata(spec: Fields, templates: Templates) -> dict[str, MetadataValue]:
    out: dict[str, MetadataValue] = {}
    for item in spec.children("metadata"):
        key = item.required_text("name")
        if key in out:
            raise item.error("name", f"{key!r} is repeated")
        ref = item.child("secretKeyRef")
        if ref is not None:
            if item.has("value"):
                raise item.error(None, "has both value and secretKeyRef; keep one")
            secret = ref.required_text("name")
            out[key] = SecretKeyRef(secret, ref.text("key") or secret)
        elif item.has("envRef"):
            raise item.error("envRef", "is not supported yet; use value or secretKeyRef")
        else:
            out[key] = templates.render(scalar_text(item.data.get("value")))
    return out


def _topic_scopes(spec: Fields, metadata: dict[str, MetadataValue]) -> TopicScopes:
    plain: dict[str, str] = {}
    wanted = {k.lower() for k in TOPIC_SCOPE_KEYS}
    for key, value in metadata.items():
        if key.lower() not in wanted:
            continue
        if isinstance(value, SecretKeyRef):
            raise spec.error(f"metadata.{key}", "must be a plain value, not a secretKeyRef")
        plain[key] = value
    try:
        return TopicScopes.from_metadata(plain)
    except TopicScopeError as exc:
        raise spec.error(f"metadata.{exc.key}", exc.problem) from exc


def _duration(spec: Fields, key: str, text: str) -> float:
    """A Go duration (``5s``, ``1m30s``, ``500ms``) or plain seconds."""
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise spec.error(key, str(exc)) from None


def _resource_files(folders: list[str | Path]) -> Iterator[Path]:
    for folder in folders:
        path = Path(folder)
        if path.is_file():
            yield path
            continue
        if not path.is_dir():
            raise ResourceError(str(path), "resources path does not exist or is not a folder")
        for entry in sorted(path.iterdir(), key=lambda p: p.name):
            if entry.is_file() and entry.suffix.lower() in YAML_SUFFIXES:
                yield entry
            elif entry.is_file():
                log.debug("%s: not a YAML file, skipped", entry)


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResourceError(str(file), f"cannot be read: {exc}") from exc


def _check_type(component: Component, known: list[ComponentTypes[..., Any]] | None) -> None:
    """Refuse a type no block builds: it would load and then do nothing at all."""
    problem = None if known is None else unsupported_type(component.type, known)
    if problem is not None:
        assert component.source is not None
        raise component.source.error("spec.type", problem)


def _check_unique(new: Component, loaded: list[Component]) -> None:
    """Refuse a second component with the same name that some app would also see.

    Same-named components with disjoint scopes (one per app) are allowed: no app sees both.
    metadata.namespace does not separate them, since nothing filters by namespace yet.
    """
    for old in loaded:
        if old.name != new.name:
            continue
        if old.scopes and new.scopes and not set(old.scopes) & set(new.scopes):
            continue
        assert new.source is not None and old.source is not None
        raise new.source.error("metadata.name", f"{new.name!r} is already defined in {old.source}")
