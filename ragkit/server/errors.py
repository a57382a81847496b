"""Every error becomes a JSON answer `{"detail": "..."}` with a fitting status, never a stack trace.

ragkit's own errors already say what was wrong and how to fix it, so their message is the answer; any
other exception is a bug: the server logs it in full, the client gets a plain 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ragkit.errors import (
    CollectionNotFoundError,
    InputError,
    ModelLoadError,
    ModelMismatchError,
    RagkitError,
    StoreError,
)
from ragkit.llm import LLMError
from ragkit.server.uploads import UploadRejected
from ragkit.store import SchemaError

log = logging.getLogger("ragkit.server")

# Most specific first: the first class an error is an instance of decides its status.
_STATUS: tuple[tuple[type[RagkitError], int], ...] = (
    (CollectionNotFoundError, 404),
    (ModelMismatchError, 409),
    (SchemaError, 409),  # a collection that is there, but that ragkit cannot use: not a passing failure
    (LLMError, 502),
    (InputError, 400),
    (ModelLoadError, 503),
    (StoreError, 503),
)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(UploadRejected, _upload_rejected)
    app.add_exception_handler(RagkitError, _ragkit_error)
    app.add_exception_handler(Exception, _unexpected)


def status_of(exc: RagkitError) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(
        {"detail": _unreadable_body(exc) or exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


def _unreadable_body(exc: HTTPException) -> str | None:
    """FastAPI answers a JSON body it cannot decode for reasons other than syntax (bytes that are not
    UTF-8, nesting deeper than the decoder recurses) with "There was an error parsing the body"; the
    cause it chains says which."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the request body is not valid JSON: it is not UTF-8 text ({cause.reason} at byte {cause.start})"
        )
    if isinstance(cause, RecursionError):
        return "the request body is not valid JSON for this service: it is nested too deeply"
    return None


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    broken_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken_json is not None:
        reason = (broken_json.get("ctx") or {}).get("error", "")
        return JSONResponse({"detail": f"the request body is not valid JSON: {reason}"}, status_code=400)
    problems = [f"{_where(e['loc'])}: {e['msg']}" for e in errors]
    return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, status_code=422)


def _where(loc: tuple[object, ...]) -> str:
    # ("body", "top_k") -> "top_k"; a missing or non-object body is reported as "body".
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts)


async def _upload_rejected(request: Request, exc: UploadRejected) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def _ragkit_error(request: Request, exc: RagkitError) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer is sent, so the server logs its traceback.
    return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)
