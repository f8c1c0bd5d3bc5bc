"""Bearer-token access to the order endpoints, when API_TOKEN is set.

Without API_TOKEN (local development) everything is open. With it, every
mutating endpoint needs ``Authorization: Bearer <API_TOKEN>``, and so do the
reads (status, events) unless API_PUBLIC_READS is on. Probes (/healthz,
/readyz), /dependencies and /metrics never carry these dependencies, so they
stay open.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from functions.deps import SettingsDep
from orderflow.settings import Settings

# auto_error=False: the token is optional when API_TOKEN is unset, and a missing
# one must be our JSON 401, not FastAPI's default answer.
bearer = HTTPBearer(
    auto_error=False,
    description="The service's API_TOKEN; required only when the service has one set.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _check(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    if settings.api_token is None:
        return
    supplied = credentials.credentials.encode() if credentials else b""
    # Constant time: how long a wrong guess takes says nothing about the token.
    if not secrets.compare_digest(supplied, settings.api_token.get_secret_value().encode()):
        raise HTTPException(
            401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


async def require_token(settings: SettingsDep, credentials: Credentials) -> None:
    _check(settings, credentials)


async def require_token_to_read(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.api_public_reads:
        _check(settings, credentials)


WRITE = Depends(require_token)
READ = Depends(require_token_to_read)
