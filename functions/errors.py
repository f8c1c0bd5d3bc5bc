"""One JSON error shape for every 4xx/5xx: ``{"error": code, "message": text}``.

No stack trace or internal address ever reaches a client; the full error goes
to the log instead.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from orderflow.log import get_logger

log = get_logger("functions.errors")


class Problem(BaseModel):
    field: str = Field(description="dotted path of the offending input, e.g. address.country")
    problem: str


class ErrorBody(BaseModel):
    """Every error answer. `problems` lists each invalid field (422 only)."""

    error: str = Field(examples=["not_found"])
    message: str
    problems: list[Problem] | None = None


_DESCRIPTIONS = {
    401: "API_TOKEN is set and the bearer token is missing or wrong",
    404: "no such order",
    409: "the order exists already, or its state does not allow this",
    413: "the request body is larger than API_MAX_BODY_BYTES",
    422: "invalid input; `problems` names each field",
    503: "Temporal, the database or the order worker is unavailable; retry shortly",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all with the ErrorBody shape."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": _code(status), "message": message, **extra}


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI answers 400 for a body it cannot decode (not UTF-8); it is bad
            # input like malformed JSON, which is 422, so answer the same way.
            problem = {"field": "body", "problem": "not valid UTF-8 JSON"}
            return JSONResponse(
                error_body(422, "body: not valid UTF-8 JSON", problems=[problem]),
                status_code=422,
            )
        message = exc.detail if isinstance(exc.detail, str) else _code(exc.status_code)
        return JSONResponse(
            error_body(exc.status_code, message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(part) for part in err.get("loc", ()) if part != "body"),
                "problem": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems[:5])
        return JSONResponse(
            jsonable_encoder(error_body(422, summary or "invalid request", problems=problems)),
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return JSONResponse(error_body(500, "internal error; it has been logged"), status_code=500)


def unavailable(what: str) -> HTTPException:
    return HTTPException(
        503, f"{what} is unavailable right now; retry shortly", headers={"Retry-After": "1"}
    )
