"""Input and output bindings (Dapr's ``bindings.*`` components): docs/bindings.md."""

from tether.platform.bindings.binding import (
    Binding,
    BindingError,
    BindingFailedError,
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
    Emit,
    InputMessage,
    InputSource,
    OutputBinding,
)
from tether.platform.bindings.registry import BINDING_TYPES, BindingConfigError, build_bindings
from tether.platform.bindings.service import BindingsService

__all__ = [
    "BINDING_TYPES",
    "Binding",
    "BindingConfigError",
    "BindingError",
    "BindingFailedError",
    "BindingNotFoundError",
    "BindingRequest",
    "BindingRequestError",
    "BindingResponse",
    "BindingsService",
    "Emit",
    "InputMessage",
    "InputSource",
    "OutputBinding",
    "build_bindings",
]
