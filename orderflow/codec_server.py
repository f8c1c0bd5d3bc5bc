"""The codec server: Temporal's remote codec protocol, for its UI and CLI.

``temporal workflow show --codec-endpoint URL --codec-auth 'Bearer TOKEN'`` and the
UI's "codec endpoint" setting send the encrypted payloads of a history here and get
them back decrypted (POST /decode), or send plain payloads to encrypt (POST /encode,
for a signal typed in the UI). python -m orderflow.codec_server

Its own small ASGI app, not a route on the API: it can decrypt every order, so it
runs with its own token (an operator's, never a shop client's), its own Service
(never behind the API's public ingress or the KEDA HTTP interceptor) and only when
asked for (the chart's `codecServer.enabled`); the API, which also runs on Lambda
and scales to zero, keeps no decryption oracle.

Every request but /healthz needs ``Authorization: Bearer CODEC_SERVER_TOKEN``: the
CLI sends it with --codec-auth, and a UI behind single sign-on forwards its user's
access token the same way ("pass access token"). Browsers reach it only from
CODEC_SERVER_CORS_ORIGIN, the Temporal UI's origin. Payloads are never logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from orderflow.log import configure_logging, get_logger
from orderflow.payload_codec import EncryptionCodec
from orderflow.settings import Settings, get_settings

log = get_logger(__name__)

# Temporal refuses payloads over 2 MiB by default; a whole history's worth is less.
MAX_BODY_BYTES = 4 * 1024 * 1024


def create_app(settings: Settings) -> FastAPI:
    if settings.codec_server_token is None:
        raise ValueError("CODEC_SERVER_TOKEN is not set: the codec server never runs open")
    token = settings.codec_server_token.get_secret_value().encode()
    codec = EncryptionCodec(settings.keyring())

    def authorized(
        authorization: Annotated[str | None, Header()] = None,
        x_namespace: Annotated[str | None, Header()] = None,
    ) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise HTTPException(401, "bearer token required", {"WWW-Authenticate": "Bearer"})
        if x_namespace is not None and x_namespace != settings.temporal_namespace:
            raise HTTPException(403, f"this codec serves namespace {settings.temporal_namespace}")

    async def payloads(request: Request) -> Payloads:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, "too many payloads at once")
        try:
            return json_format.Parse(body, Payloads())
        except json_format.ParseError as e:
            raise HTTPException(400, "body is not a Payloads JSON object") from e

    def answer(result: list[object]) -> Response:
        out = Payloads(payloads=result)  # type: ignore[arg-type]
        return Response(json_format.MessageToJson(out), media_type="application/json")

    app = FastAPI(title="Orderflow codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.codec_server_cors_origin.rstrip("/")],
        allow_methods=["POST"],
        allow_headers=["authorization", "content-type", "x-namespace"],
        allow_credentials=True,  # the UI's "include cross-origin credentials"
    )
    guarded = [Depends(authorized)]

    @app.post("/encode", dependencies=guarded)
    async def encode(request: Request) -> Response:
        return answer(list(await codec.encode((await payloads(request)).payloads)))

    @app.post("/decode", dependencies=guarded)
    async def decode(request: Request) -> Response:
        try:
            decoded = await codec.decode((await payloads(request)).payloads)
        except RuntimeError as e:  # a key this server was not given, or a forged payload
            raise HTTPException(422, str(e)) from e
        return answer(list(decoded))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging("codec-server", settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except ValueError as e:
        log.error("codec server not started", error=str(e))
        raise SystemExit(2) from e
    log.info(
        "codec server started",
        listen=f"{settings.codec_server_host}:{settings.codec_server_port}",
        cors_origin=settings.codec_server_cors_origin,
        current_key=settings.keyring().current,
    )
    uvicorn.run(
        app,
        host=settings.codec_server_host,
        port=settings.codec_server_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
