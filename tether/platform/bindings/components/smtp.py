"""``bindings.smtp``: Dapr's create sends the data as an HTML mail, aiosmtplib per call.

The component's ``emailFrom``, ``emailTo``, ``emailCC``, ``emailBCC``, ``subject`` and
``priority`` are defaults each request's metadata may override (Dapr's merge); addresses
are separated by ``;``. Port 465 is TLS from the first byte, any other port upgrades with
STARTTLS when the server offers it (as Dapr's gomail dialer does); ``skipTLSVerify`` turns
certificate checks off. One connection per mail, as Dapr: a mail binding sends rarely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from tether.platform.bindings.binding import (
    CREATE,
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
)
from tether.platform.components import Component, metadata

DEFAULT_PRIORITY = 3
#: the port of implicit TLS (SMTPS)
TLS_PORT = 465
#: how long connecting and each SMTP exchange may take
TIMEOUT = 30.0
SEPARATOR = ";"
#: the request metadata that overrides the component's
_OVERRIDES = ("emailFrom", "emailTo", "emailCC", "emailBCC", "subject")


@dataclass(frozen=True, slots=True)
class Mail:
    """The addressing of one mail: the component's, then merged with a request's."""

    #: the set ones of :data:`_OVERRIDES`
    fields: Mapping[str, str]
    priority: int = DEFAULT_PRIORITY

    def merged(self, given: Mapping[str, str]) -> Mail:
        fields = {**self.fields, **{k: given[k] for k in _OVERRIDES if given.get(k)}}
        priority = self.priority
        if given.get("priority"):
            parsed = _priority(given["priority"])
            if parsed is None:
                raise BindingRequestError(f"metadata priority {given['priority']!r} must be a "
                                          "whole number from 1 (highest) to 5 (lowest)")
            priority = parsed
        return Mail(fields, priority)


def _priority(text: str) -> int | None:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 5:
        return None
    return int(value)


def _addresses(text: str) -> str:
    return ", ".join(part.strip() for part in text.split(SEPARATOR) if part.strip())


class SmtpBinding:
    """The output side: nothing to open, a connection per mail."""

    operations = frozenset({CREATE})

    def __init__(self, host: str, port: int, *, user: str | None, password: str | None,
                 skip_tls_verify: bool, defaults: Mail) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.skip_tls_verify = skip_tls_verify
        self.defaults = defaults

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def message(self, request: BindingRequest) -> EmailMessage:
        mail = self.defaults.merged(request.metadata)
        for field in ("emailFrom", "emailTo", "subject"):
            if field not in mail.fields:
                raise BindingRequestError(f"metadata {field} is required (in the component "
                                          "or the request)")
        given = mail.fields
        message = EmailMessage()
        message["From"] = given["emailFrom"]
        message["To"] = _addresses(given["emailTo"])
        if "emailCC" in given:
            message["Cc"] = _addresses(given["emailCC"])
        if "emailBCC" in given:  # a recipient; aiosmtplib leaves the header out of the mail
            message["Bcc"] = _addresses(given["emailBCC"])
        message["Subject"] = given["subject"]
        message["X-Priority"] = str(mail.priority)
        message.set_content(request.data.decode("utf-8", errors="replace"), subtype="html")
        return message

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        if request.operation != CREATE:
            raise BindingRequestError(f"unsupported operation {request.operation!r}")
        message = self.message(request)
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, username=self.user,
                password=self.password, use_tls=self.port == TLS_PORT,
                start_tls=None if self.port != TLS_PORT else False,
                validate_certs=not self.skip_tls_verify, timeout=TIMEOUT,
            )
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPSenderRefused) as exc:
            raise BindingRequestError(f"the SMTP server refused the mail: {exc}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise BindingFailedError(f"sending the mail through {self.host}:{self.port} "
                                     f"failed: {exc}") from exc
        return BindingResponse()


def build(component: Component) -> Binding:
    host = metadata.required(component, "host", "the SMTP server")
    port = metadata.integer(component, "port", minimum=1)
    if port is None:
        raise metadata.MetadataError("port", "is required (the SMTP server's port)")
    if port > 65535:
        raise metadata.MetadataError("port", f"{port} must be at most 65535")
    user = metadata.text(component, "user")
    password = metadata.text(component, "password")
    if (user is None) != (password is None):
        raise metadata.MetadataError("user" if user is None else "password",
                                     "is required with the other (user and password go "
                                     "together)")
    priority = DEFAULT_PRIORITY
    if (text := metadata.text(component, "priority")) is not None:
        parsed = _priority(text)
        if parsed is None:
            raise metadata.MetadataError("priority", f"{text!r} must be a whole number from "
                                                     "1 (highest) to 5 (lowest)")
        priority = parsed
    defaults = Mail({k: v for k in _OVERRIDES if (v := metadata.text(component, k))},
                    priority)
    return Binding(name=component.name, type=component.type,
                   output=SmtpBinding(host, port, user=user, password=password,
                                      skip_tls_verify=metadata.boolean(component,
                                                                       "skipTLSVerify"),
                                      defaults=defaults))
