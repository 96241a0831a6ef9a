"""SDK errors: which ones Tether raises as which BrokerError, and which ones a background
operation (settling, scheduling, receiving) logs and survives."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusServerBusyError,
)

from tether.brokers.base import BrokerConfigError, BrokerError, BrokerUnavailableError

#: what a failed SDK call raises
SDK_ERRORS: tuple[type[Exception], ...] = (ServiceBusError, AzureError)
#: what a failed settlement raises (Service Bus then redelivers the message later)
SETTLE_ERRORS: tuple[type[Exception], ...] = (ServiceBusError, MessageAlreadySettled, AzureError)

_UNAVAILABLE = (
    ServiceBusConnectionError,
    ServiceBusCommunicationError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusServerBusyError,
    OperationTimeoutError,
    ServiceRequestError,
    ServiceResponseError,
    ClientAuthenticationError,
)


@contextlib.asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """SDK errors as BrokerErrors (the original stays chained)."""
    try:
        yield
    except BrokerError:
        raise
    except MessagingEntityNotFoundError as exc:
        raise BrokerConfigError(
            f"{what}: entity not found (manage_entities=false?): {exc}"
        ) from exc
    except _UNAVAILABLE as exc:
        raise BrokerUnavailableError(f"{what}: Service Bus unreachable or refused: {exc}") from exc
    except (AzureError, MessageSizeExceededError) as exc:
        raise BrokerError(f"{what}: {exc}") from exc
