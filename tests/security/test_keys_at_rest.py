"""API keys at rest: the database holds a key's SHA-256, never the key or its secret part."""

from __future__ import annotations

import hashlib

import grpc

from llmproxy.gateway.keys import hash_secret
from llmproxy.v1 import gateway_pb2, gateway_pb2_grpc
from tests.security.conftest import SecureStack
from tests.security.probes import probed


def test_api_keys_are_stored_hashed_and_only_the_presented_secret_opens_them(
    secure_stack: SecureStack,
) -> None:
    rows = secure_stack.query("select * from api_keys")
    assert len(rows) == len(secure_stack.keys) == 3
    stored = "\n".join(str(value) for row in rows for value in row.values())
    for tenant, key in secure_stack.keys.items():
        key_id, secret = key.split("_", 2)[1:]
        assert len(secret) == 43  # 256 bits, url-safe base64
        assert secret not in stored and key not in stored, f"{tenant}'s key is stored in clear"
        # not a plain, unsalted SHA-256 of the secret or of the key either (a lookup table
        # of leaked keys would match it); it is the domain-separated hash
        assert hashlib.sha256(secret.encode()).hexdigest() not in stored
        assert hashlib.sha256(key.encode()).hexdigest() not in stored
        (row,) = [r for r in rows if key_id in r.values()]
        assert hash_secret(secret) in row.values()
    probed("keys at rest", "every api_keys column of 3 keys", "no key, no secret, no bare sha256")

    # the id alone (with any secret) opens nothing: the hash is checked on every call
    key_id = secure_stack.keys["acme"].split("_", 2)[1]
    forged = f"llp_{key_id}_{'A' * 43}"
    with grpc.insecure_channel(secure_stack.address("gateway")) as channel:
        gateway = gateway_pb2_grpc.GatewayStub(channel)
        try:
            gateway.Usage(
                gateway_pb2.UsageRequest(), metadata=(("authorization", f"Bearer {forged}"),)
            )
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            assert "invalid API key" in (exc.details() or "")  # type: ignore[attr-defined]
        else:
            raise AssertionError("a forged secret on a real key id was accepted")
        # and the real key works (the probe above would pass on a broken gateway otherwise)
        gateway.Usage(gateway_pb2.UsageRequest(), metadata=secure_stack.auth("acme"))
    probed("keys at rest", "a real key id with a forged secret", "UNAUTHENTICATED")
