"""Fuzzing the gRPC request decoders: random bytes, and valid requests with random bytes
flipped, sent through a raw channel (no client-side serialisation) to every method of the
gateway, and random bytes to every method of the other services.

A request that does not parse gets INVALID_ARGUMENT naming the expected message type; one
that parses gets whatever its content deserves (OK, INVALID_ARGUMENT, NOT_FOUND, ...).
Never INTERNAL or UNKNOWN (a crash, or grpcio's own "Unexpected <class ...>" answer), and
every service is still SERVING afterwards.
"""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproxy.v1 import (
    cache_pb2,
    common_pb2,
    context_pb2,
    gateway_pb2,
    profiler_pb2,
    scheduler_pb2,
    whatsapp_pb2,
)
from tests.security.conftest import SecureStack
from tests.security.probes import probed
from tests.support.services import health

FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
#: a valid request of each gateway method, the seed of the mutations
GATEWAY_SEEDS = {
    "Ask": gateway_pb2.AskRequest(
        prompt="Hi there",
        generation=common_pb2.GenerationParams(max_tokens=8),
        preferences=common_pb2.Preferences(pinned_model="fake-small"),
    ),
    "AskStream": gateway_pb2.AskRequest(
        prompt="Hi", generation=common_pb2.GenerationParams(max_tokens=8)
    ),
    "Quote": gateway_pb2.AskRequest(prompt="How much?"),
    "Feedback": gateway_pb2.FeedbackRequest(request_id="r-1", rating=3),
    "Usage": gateway_pb2.UsageRequest(level=gateway_pb2.USAGE_LEVEL_APP),
}
OTHER_SERVICES = {
    "context": context_pb2,
    "cache": cache_pb2,
    "profiler": profiler_pb2,
    "scheduler": scheduler_pb2,
    "whatsapp": whatsapp_pb2,
}


def _methods(module) -> list[tuple[str, bool]]:  # type: ignore[no-untyped-def]
    (service,) = module.DESCRIPTOR.services_by_name.values()
    return [(f"/{service.full_name}/{m.name}", m.server_streaming) for m in service.methods]


def _call(
    channel: grpc.Channel, method: str, streaming: bool, data: bytes, metadata: tuple
) -> grpc.StatusCode:
    try:
        if streaming:
            for _ in channel.unary_stream(method)(data, metadata=metadata, timeout=20):
                pass
        else:
            channel.unary_unary(method)(data, metadata=metadata, timeout=20)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
        details = exc.details() or ""  # type: ignore[attr-defined]
        assert code not in FORBIDDEN, (method, data[:80], code, details)
        if code is grpc.StatusCode.INVALID_ARGUMENT and "not a valid" in details:
            assert "llmproxy.v1." in details, details  # names the expected message type
        return code
    return grpc.StatusCode.OK


def _mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(seed)
    for kind, position, value in edits:
        if not data:
            data.append(value)
            continue
        at = position % len(data)
        if kind == 0:
            data[at] = value
        elif kind == 1:
            data.insert(at, value)
        else:
            del data[at]
    return bytes(data)


def test_random_and_mutated_requests_to_every_gateway_method(secure_stack: SecureStack) -> None:
    seen: dict[str, int] = {}
    auth = secure_stack.auth("globex")
    with grpc.insecure_channel(secure_stack.address("gateway")) as channel:

        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            method=st.sampled_from(sorted(GATEWAY_SEEDS)),
            raw=st.one_of(
                st.binary(max_size=300).map(lambda b: ("raw", b)),
                st.lists(
                    st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)),
                    min_size=1,
                    max_size=6,
                ).map(lambda edits: ("mutated", edits)),
            ),
        )
        def probe(method: str, raw: tuple[str, object]) -> None:
            kind, payload = raw
            seed = GATEWAY_SEEDS[method].SerializeToString()
            data = payload if kind == "raw" else _mutate(seed, payload)  # type: ignore[arg-type]
            assert isinstance(data, bytes)
            code = _call(channel, f"/llmproxy.v1.Gateway/{method}", method == "AskStream",
                         data, auth)  # fmt: skip
            seen[code.name] = seen.get(code.name, 0) + 1

        probe()
    assert health(secure_stack.address("gateway")) == "SERVING"
    codes = ", ".join(f"{c}x{n}" for c, n in sorted(seen.items()))
    probed(
        "fuzz gRPC",
        "60 random/mutated requests to Gateway Ask, AskStream, Quote, Feedback, Usage",
        f"never INTERNAL/UNKNOWN ({codes}); SERVING",
    )


def test_undecodable_bytes_to_every_method_of_every_service(secure_stack: SecureStack) -> None:
    garbage = [b"\xff\xff\xff\xff", b"\x0a\xff\x01", b"\x08" + b"\xff" * 11]
    methods = 0
    for name, module in OTHER_SERVICES.items():
        with grpc.insecure_channel(secure_stack.address(name)) as channel:
            for method, streaming in _methods(module):
                for data in garbage:
                    code = _call(channel, method, streaming, data, ())
                    assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, code)
                methods += 1
        assert health(secure_stack.address(name)) == "SERVING"
    probed(
        "fuzz gRPC",
        f"undecodable bytes to {methods} methods of {len(OTHER_SERVICES)} other services",
        "INVALID_ARGUMENT naming the message type; all SERVING",
    )
