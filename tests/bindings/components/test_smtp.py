"""bindings.smtp against an aiosmtpd server the test starts on a free port."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from tests.bindings.components.yaml_a import build, output
from tests.servers import free_port
from tether.platform.bindings.binding import (
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
)
from tether.platform.bindings.registry import BindingConfigError


@dataclass
class Inbox:
    """What the server received: (envelope sender, recipients, parsed message)."""

    mails: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address.startswith("refused@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer", b"pw")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=authenticate, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


async def test_mail_arrives_with_from_to_subject_and_body(
    smtp_server: tuple[int, Inbox],
) -> None:
    port, inbox = smtp_server
    inbox.mails.clear()
    mailer = output("bindings.smtp", host="127.0.0.1", port=str(port),
                    emailFrom="app@example.com", emailTo="a@example.com;b@example.com",
                    emailCC="c@example.com", emailBCC="hidden@example.com",
                    subject="Hello", priority="1")
    await mailer.start()
    response = await mailer.invoke(BindingRequest("create", b"<b>hi</b> there"))
    assert not response.data
    ((sender, recipients, message),) = inbox.mails
    assert sender == "app@example.com"
    assert sorted(recipients) == ["a@example.com", "b@example.com", "c@example.com",
                                  "hidden@example.com"]
    assert message["From"] == "app@example.com"
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Cc"] == "c@example.com"
    assert message["Bcc"] is None  # a blind copy stays blind
    assert message["Subject"] == "Hello"
    assert message["X-Priority"] == "1"
    assert message.get_content_type() == "text/html"
    assert message.get_content().strip() == "<b>hi</b> there"
    await mailer.close()


async def test_request_metadata_overrides_the_component(
    smtp_server: tuple[int, Inbox],
) -> None:
    port, inbox = smtp_server
    inbox.mails.clear()
    mailer = output("bindings.smtp", host="127.0.0.1", port=str(port),
                    emailFrom="app@example.com", emailTo="a@example.com", subject="Default")
    await mailer.invoke(BindingRequest("create", b"body", {
        "emailTo": "other@example.com", "subject": "Special", "priority": "5",
        "emailFrom": "boss@example.com"}))
    ((sender, recipients, message),) = inbox.mails
    assert (sender, recipients) == ("boss@example.com", ["other@example.com"])
    assert message["Subject"] == "Special" and message["X-Priority"] == "5"


async def test_missing_addressing_and_bad_priority_are_the_callers_mistake(
    smtp_server: tuple[int, Inbox],
) -> None:
    port, inbox = smtp_server
    inbox.mails.clear()
    mailer = output("bindings.smtp", host="127.0.0.1", port=str(port))
    for missing, given in (("emailFrom", {}),
                           ("emailTo", {"emailFrom": "a@x"}),
                           ("subject", {"emailFrom": "a@x", "emailTo": "b@x"})):
        with pytest.raises(BindingRequestError, match=f"metadata {missing} is required"):
            await mailer.invoke(BindingRequest("create", b"x", given))
    with pytest.raises(BindingRequestError, match="priority"):
        await mailer.invoke(BindingRequest("create", b"x", {
            "emailFrom": "a@x", "emailTo": "b@x", "subject": "s", "priority": "9"}))
    with pytest.raises(BindingRequestError, match="refused"):
        await mailer.invoke(BindingRequest("create", b"x", {
            "emailFrom": "a@x", "emailTo": "refused@x", "subject": "s"}))
    assert inbox.mails == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_user_and_password_log_in(auth_server: tuple[int, Inbox]) -> None:
    port, inbox = auth_server
    inbox.mails.clear()
    good = output("bindings.smtp", host="127.0.0.1", port=str(port), user="mailer",
                  password="pw", emailFrom="a@x", emailTo="b@x", subject="s")
    await good.invoke(BindingRequest("create", b"x"))
    assert len(inbox.mails) == 1
    bad = output("bindings.smtp", host="127.0.0.1", port=str(port), user="mailer",
                 password="wrong", emailFrom="a@x", emailTo="b@x", subject="s")
    with pytest.raises(BindingFailedError):
        await bad.invoke(BindingRequest("create", b"x"))
    assert len(inbox.mails) == 1


async def test_unreachable_server_fails() -> None:
    mailer = output("bindings.smtp", host="127.0.0.1", port=str(free_port()),
                    emailFrom="a@x", emailTo="b@x", subject="s")
    with pytest.raises(BindingFailedError, match="failed"):
        await mailer.invoke(BindingRequest("create", b"x"))


def test_metadata_errors_name_the_field() -> None:
    with pytest.raises(BindingConfigError, match="host is required"):
        build("bindings.smtp", port="25")
    with pytest.raises(BindingConfigError, match="port is required"):
        build("bindings.smtp", host="h")
    with pytest.raises(BindingConfigError, match="port 'x'"):
        build("bindings.smtp", host="h", port="x")
    with pytest.raises(BindingConfigError, match="password is required"):
        build("bindings.smtp", host="h", port="25", user="u")
    with pytest.raises(BindingConfigError, match="priority"):
        build("bindings.smtp", host="h", port="25", priority="0")
    with pytest.raises(BindingConfigError, match="skipTLSVerify"):
        build("bindings.smtp", host="h", port="25", skipTLSVerify="perhaps")
