"""Dapr's gRPC API (``dapr.proto.runtime.v1.Dapr``): the second front end of the blocks.

The HTTP routes of :mod:`tether.sidecar` and the servicer here call the same block services
(``tether.platform.<block>.service``), so both APIs answer from one implementation. The
generated messages and servicer base are the official Dapr SDK's (the ``grpc`` extra):
there is no code generation step, and the wire types are exactly the SDK's. docs/grpc.md
"""

import os

# before grpc is imported: `tether run` starts app processes after the server is up, and
# grpcio's fork handlers would then write their own (non-JSON) line to stderr for each; the
# children exec at once, so the handlers have nothing to protect. GRPC_VERBOSITY keeps the
# C core's own log lines to errors, as the rest of Tether's logs follow --log-level.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from tether.sidecar.grpc.server import GrpcServer, GrpcServices

__all__ = ["GrpcServer", "GrpcServices"]
