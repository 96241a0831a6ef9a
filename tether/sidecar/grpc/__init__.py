"""Dapr's gRPC API (``dapr.proto.runtime.v1.Dapr``): the second front end of the blocks.

The HTTP routes of :mod:`tether.sidecar` and the servicer here call the same block services
(``tether.platform.<block>.service``), so both APIs answer from one implementation. The
generated messages and servicer base are the official Dapr SDK's (the ``grpc`` extra):
there is no code generation step, and the wire types are exactly the SDK's. docs/grpc.md
"""

from tether.sidecar.grpc.server import GrpcServer, GrpcServices

__all__ = ["GrpcServer", "GrpcServices"]
