"""InvokeService: a call to another app's HTTP method through the invocation service.

The SDK sends it when ``DAPR_API_METHOD_INVOCATION_PROTOCOL=grpc`` (its default is HTTP).
The request's ``http_extension`` gives the verb (POST when unset) and query string; its
``data`` (a protobuf Any) carries the body bytes in ``value``. An answer of 400 or above is a
gRPC error with the matching code and the app's body as the message.
"""

from __future__ import annotations

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import invoke_pb2
from google.protobuf import any_pb2

from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.invocation.service import InvocationService


def _verb(request: common_pb2.InvokeRequest) -> str:
    verb = request.http_extension.verb if request.HasField("http_extension") else 0
    if verb == common_pb2.HTTPExtension.NONE:
        return "POST"
    return str(common_pb2.HTTPExtension.Verb.Name(verb))


class InvocationRpc:
    def __init__(self, service: InvocationService) -> None:
        self.service = service

    async def invoke(self, request: invoke_pb2.InvokeServiceRequest) -> common_pb2.InvokeResponse:
        message = request.message
        if not message.method:
            raise ApiError(400, errors.DIRECT_INVOKE, "the method to invoke is missing")
        path = message.method.lstrip("/")
        query = message.http_extension.querystring
        if query:
            path = f"{path}?{query}"
        headers = [("content-type", message.content_type)] if message.content_type else []
        reply = await self.service.invoke(request.id, _verb(message), path, headers,
                                          message.data.value)
        if reply.status >= 400:
            raise ApiError(reply.status, errors.DIRECT_INVOKE,
                           reply.body.decode(errors="replace"))
        content_type = next((v for k, v in reply.headers if k.lower() == "content-type"), "")
        return common_pb2.InvokeResponse(data=any_pb2.Any(value=reply.body),
                                         content_type=content_type)
