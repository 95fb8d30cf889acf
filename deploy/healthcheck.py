"""Container health check: is the service in this container SERVING on gRPC health?

Exit 0 when the standard ``grpc.health.v1`` check answers SERVING, 1 otherwise. The address
is the first argument, else ``127.0.0.1:$LLMPROXY_GRPC_PORT`` (the port the service binds).
Kubernetes uses its native gRPC probe instead; this is for Docker's HEALTHCHECK.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else f"127.0.0.1:{os.environ.get('LLMPROXY_GRPC_PORT')}"
    if address.endswith(":None"):
        print("healthcheck: LLMPROXY_GRPC_PORT is not set and no address given", file=sys.stderr)
        return 1
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2.0
            )
    except grpc.RpcError as exc:
        print(f"healthcheck: {address} unreachable: {exc.code().name}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"healthcheck: {address} {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
