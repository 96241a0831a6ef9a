"""Typed Dapr resources: components, their metadata and pub/sub topic scoping.

Plain frozen dataclasses built by :mod:`.loader`; nothing here touches the disk. Errors name
the file, the document (1-based) and the field, so a user can find the line to fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tether.platform.errors import ConfigError

T = TypeVar("T")

PUBLISHING_SCOPES = "publishingScopes"
SUBSCRIPTION_SCOPES = "subscriptionScopes"
ALLOWED_TOPICS = "allowedTopics"
PROTECTED_TOPICS = "protectedTopics"
TOPIC_SCOPE_KEYS = (PUBLISHING_SCOPES, SUBSCRIPTION_SCOPES, ALLOWED_TOPICS, PROTECTED_TOPICS)


class ResourceError(ConfigError):
    """A resource file that cannot be loaded; the message says where and what."""

    def __init__(
        self, file: str, problem: str, *, document: int | None = None, field: str | None = None
    ) -> None:
        self.file = file
        self.document = document
        self.field = field
        self.problem = problem
        where = file if document is None else f"{file}, document {document}"
        detail = problem if field is None else f"{field} {problem}"
        super().__init__(f"{where}: {detail}")


class TopicScopeError(ConfigError):
    """A malformed publishingScopes / subscriptionScopes value."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a resource came from: the file as found and the document's 1-based index."""

    file: str
    document: int

    def error(self, field: str | None, problem: str) -> ResourceError:
        return ResourceError(self.file, problem, document=self.document, field=field)

    def __str__(self) -> str:
        return f"{self.file}, document {self.document}"


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """``secretKeyRef: {name, key}`` kept unresolved; the secret store resolves it later.

    Dapr uses the secret name as the key when ``key`` is omitted.
    """

    name: str
    key: str


MetadataValue = str | SecretKeyRef


@dataclass(frozen=True, slots=True)
class TopicScopes:
    """Pub/sub topic scoping read from a pub/sub component's metadata (Dapr semantics).

    ``publishing`` / ``subscription`` map an app id to the topics it may use; an app that is
    not listed is unrestricted, an app listed with no topics (``app=``) may use none.
    ``allowed_topics`` (None when unset) limits every app; a protected topic needs an
    explicit grant in the scopes.
    """

    publishing: Mapping[str, frozenset[str]] = field(default_factory=dict)
    subscription: Mapping[str, frozenset[str]] = field(default_factory=dict)
    allowed_topics: frozenset[str] | None = None
    protected_topics: frozenset[str] = frozenset()

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> TopicScopes:
        """Parse the four keys (names matched case-insensitively, spaces ignored, as Dapr does).

        Raises TopicScopeError naming the key for an entry that is not ``app=topic,...``: Dapr
        skips such entries, which silently leaves that app unrestricted.
        """
        by_name = {k.lower(): v for k, v in metadata.items()}

        def get(key: str) -> str:
            return by_name.get(key.lower(), "").replace(" ", "")

        allowed = get(ALLOWED_TOPICS)
        return cls(
            publishing=_parse_app_topics(PUBLISHING_SCOPES, get(PUBLISHING_SCOPES)),
            subscription=_parse_app_topics(SUBSCRIPTION_SCOPES, get(SUBSCRIPTION_SCOPES)),
            allowed_topics=_topic_set(allowed) if allowed else None,
            protected_topics=_topic_set(get(PROTECTED_TOPICS)),
        )

    def can_publish(self, app_id: str, topic: str) -> bool:
        return self._allowed(topic, self.publishing.get(app_id))

    def can_subscribe(self, app_id: str, topic: str) -> bool:
        return self._allowed(topic, self.subscription.get(app_id))

    def _allowed(self, topic: str, granted: frozenset[str] | None) -> bool:
        # same order as Dapr's IsOperationAllowed: allow-list, then protection, then scopes
        if self.allowed_topics is not None and topic not in self.allowed_topics:
            return False
        if granted is None:
            return topic not in self.protected_topics
        return topic in granted


@dataclass(frozen=True, slots=True)
class Component:
    """One ``kind: Component`` resource, template tags already resolved for one app."""

    name: str
    type: str
    version: str = "v1"
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    namespace: str | None = None
    init_timeout: float = 5.0
    ignore_errors: bool = False
    scopes: tuple[str, ...] = ()
    secret_store: str | None = None
    #: parsed only for ``pubsub.*`` components
    topic_scopes: TopicScopes | None = None
    source: Source | None = None

    @property
    def block(self) -> str:
        """The building block: ``pubsub`` for ``pubsub.kafka``."""
        return self.type.partition(".")[0]

    def visible_to(self, app_id: str) -> bool:
        """Empty scopes mean every app may use the component."""
        return not self.scopes or app_id in self.scopes

    def value(self, name: str, default: str | None = None) -> str | None:
        """A plain metadata value; None (or default) when unset or a secret reference."""
        found = self.metadata.get(name)
        return found if isinstance(found, str) else default

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        return {k: v for k, v in self.metadata.items() if isinstance(v, SecretKeyRef)}


@dataclass(frozen=True, slots=True)
class OtherResource:
    """A resource of a kind Tether does not load yet (Configuration, Resiliency, ...)."""

    kind: str
    api_version: str
    name: str | None
    source: Source
    #: the whole document, for the block that reads this kind (tether.platform.resiliency)
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Fields:
    """Typed reads from one YAML mapping; every error names the file, document and field."""

    def __init__(self, data: Mapping[str, Any], path: str, source: Source) -> None:
        self.data = data
        self.path = path
        self.source = source

    def name_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, problem: str) -> ResourceError:
        return self.source.error(self.name_of(key) if key else self.path or None, problem)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _typed(self, key: str, kind: type[T], noun: str) -> T | None:
        """The field's value, None when unset; an error when it is not a ``kind``."""
        value = self.data.get(key)
        if value is not None and not isinstance(value, kind):
            raise self.error(key, f"must be {noun}, not {_yaml_type(value)}")
        return value

    def text(self, key: str) -> str | None:
        return self._typed(key, str, "a string")

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise self.error(key, "is required")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {value!r}")
        return value

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, not {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, not {value}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)

    def child(self, key: str) -> Fields | None:
        value = self._typed(key, dict, "a mapping")
        return None if value is None else Fields(value, self.name_of(key), self.source)

    def children(self, key: str) -> list[Fields]:
        out = []
        for index, item in enumerate(self._typed(key, list, "a list") or ()):
            where = f"{self.name_of(key)}[{index}]"
            if not isinstance(item, dict):
                raise self.source.error(where, f"must be a mapping, not {_yaml_type(item)}")
            out.append(Fields(item, where, self.source))
        return out


def scalar_text(value: object) -> str:
    """A YAML scalar as the string Dapr passes to components (``true``, ``1``, ``""``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        # Dapr metadata values are JSON values; structured ones reach components as JSON text
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _topic_set(text: str) -> frozenset[str]:
    return frozenset(t for t in text.split(",") if t)


def _parse_app_topics(key: str, text: str) -> dict[str, frozenset[str]]:
    """``app1=t1,t2;app2=`` -> {app1: {t1, t2}, app2: {}}; repeated apps are merged."""
    scopes: dict[str, frozenset[str]] = {}
    for entry in text.split(";"):
        if not entry:
            continue  # a trailing ";" is common and harmless
        app, sep, topics = entry.partition("=")
        if not sep or not app:
            raise TopicScopeError(key, f"entry {entry!r} is not app=topic1,topic2")
        scopes[app] = scopes.get(app, frozenset()) | _topic_set(topics)
    return scopes


def _yaml_type(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
