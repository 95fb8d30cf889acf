"""The webhook's ``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the app secret."""

from __future__ import annotations

import hashlib
import hmac

from llmproxy.platform.errors import PermissionDeniedError, UnauthenticatedError

__all__ = ["SIGNATURE_HEADER", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta sends for ``body`` ("sha256=<hex>")."""
    return _PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, app_secret: str) -> None:
    """Return if ``header`` signs ``body``; raise otherwise.

    Raises:
        UnauthenticatedError: no signature header (HTTP 401).
        PermissionDeniedError: a signature that does not match (HTTP 403); compared in
            constant time, so the answer's timing tells nothing about the right value.
    """
    if not header or not header.strip():
        raise UnauthenticatedError(f"missing {SIGNATURE_HEADER} header")
    presented = header.strip()
    expected = sign(body, app_secret)
    # compare_digest on bytes of equal type; a wrong prefix or length just fails to match
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise PermissionDeniedError(f"{SIGNATURE_HEADER} does not match the body")
