"""Fuzzing the OpenAI-compatible HTTP API with hypothesis: random JSON bodies and headers
to ``POST /v1/chat/completions``. Whatever arrives, the answer is a success or a 4xx whose
JSON error message says what is wrong — never a 5xx, never a hang — and the gateway stays
healthy."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import SecureStack
from tests.security.probes import probed
from tests.support.services import health

EXAMPLES = 80

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),  # json.dumps writes NaN as a bare token: covered by raw bodies
    st.text(max_size=40),
)
_json = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_role = st.sampled_from(["user", "system", "assistant", "tool", "developer", "", "USER", "bot"])
_message = st.one_of(
    st.fixed_dictionaries(
        {"role": _role, "content": st.one_of(st.text(max_size=60), _json)},
        optional={"name": st.text(max_size=10), "tool_call_id": _json},
    ),
    _json,
)
_question = st.fixed_dictionaries(
    {"role": st.just("user"), "content": st.text(min_size=1, max_size=60).filter(str.strip)}
)
_body = st.one_of(
    st.fixed_dictionaries(
        {
            "messages": st.one_of(
                st.lists(_question, min_size=1, max_size=2), st.lists(_message, max_size=4), _json
            )
        },
        optional={
            "model": st.one_of(st.sampled_from(["fake-small", "fake-large", "gpt-9", ""]), _json),
            "max_tokens": st.one_of(st.integers(min_value=-5, max_value=10**9), _json),
            "temperature": st.one_of(st.floats(min_value=-3, max_value=5), _json),
            "top_p": st.one_of(st.floats(min_value=-1, max_value=2), _json),
            "stream": st.one_of(st.booleans(), _json),
            "stop": st.one_of(st.lists(st.text(max_size=5), max_size=5), _json),
            "n": st.one_of(st.integers(min_value=-1, max_value=5), _json),
            "seed": _json,
            "user": _json,
            "stream_options": _json,
            "llmproxy": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "conversation_id": st.one_of(st.text(max_size=20), _json),
                        "preferences": _json,
                        "cache": _json,
                        "context": _json,
                    },
                ),
                _json,
            ),
        },
    ),
    _json,
)
_raw = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b'{"messages": NaN}', b"[]", b"null", b'{"messages": [}]']),
)
_content_type = st.sampled_from(
    ["application/json", "text/plain", "application/json; charset=latin-1", "", "multipart/x"]
)


@pytest.mark.parametrize("kind", ["json", "raw"])
def test_random_requests_get_an_answer_or_a_clear_4xx_never_a_5xx(
    secure_stack: SecureStack, kind: str
) -> None:
    url = f"{secure_stack.http_url}/chat/completions"
    key = secure_stack.keys["globex"]
    statuses: dict[int, int] = {}
    client = httpx.Client(timeout=30)

    @settings(
        max_examples=EXAMPLES // 2,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        body=_body if kind == "json" else _raw,
        content_type=_content_type,
        auth=st.sampled_from(["key", "key", "key", "none", "garbage", "bearer-empty"]),
        extra=st.dictionaries(
            st.from_regex(r"\Ax-[a-z]{1,8}\Z"),
            st.from_regex(r"\A[!-~][ -~]{0,28}[!-~]\Z"),
            max_size=3,
        ),
    )
    def probe(body: Any, content_type: str, auth: str, extra: dict[str, str]) -> None:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {**extra, "content-type": content_type}
        headers["authorization"] = {
            "key": f"Bearer {key}",
            "none": "",
            "garbage": "Bearer llp_",
            "bearer-empty": "Bearer",
        }[auth]
        if not headers["authorization"]:
            del headers["authorization"]
        response = client.post(url, content=content, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (content[:300], response.status_code, response.text)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["message"], str) and len(error["message"]) > 5, error
            assert "internal" not in error["message"].lower(), error
            assert error.get("type"), error

    try:
        probe()
    finally:
        client.close()
    assert health(secure_stack.address("gateway")) == "SERVING"
    summary = ", ".join(f"{code}x{n}" for code, n in sorted(statuses.items()))
    probed(
        "fuzz HTTP",
        f"{EXAMPLES // 2} random {kind} bodies + headers to /v1/chat/completions",
        f"no 5xx; every 4xx names the problem ({summary}); gateway SERVING",
    )
