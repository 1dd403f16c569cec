"""Domain errors (:mod:`service.errors`) and their HTTP statuses, in one place; how every error
is documented in the OpenAPI document."""

from collections.abc import Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from service.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OverLimit,
    ServiceError,
    SpecInvalid,
    Unauthorized,
)
from service.store.engine import transient

# Every domain error's status: the one place an error becomes an HTTP answer.
STATUS: dict[type[ServiceError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    SpecInvalid: 422,
}


def _path(loc: Sequence[str | int]) -> str:
    """``("body", "search_space", "training.lr", "low")`` → ``search_space["training.lr"].low``."""
    if list(loc) == ["body"]:
        return "body"
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part:
            out += f'["{part}"]'
        else:
            out += f".{part}" if out else part
    return out


class ErrorOut(BaseModel):
    """Every error but validation: one sentence."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    path: str
    msg: str
    type: str


class OverLimitOut(BaseModel):
    """A 429 or 403 of a limit: which, its value, the usage, and what to do (in ``detail``)."""

    detail: str
    quota: str
    limit: int
    usage: int


class ValidationOut(BaseModel):
    """A 422: every reason, each at its field."""

    detail: list[FieldError]


# The errors any API route may answer, for the OpenAPI document.
API_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No API key, or an unknown or revoked one."},
    404: {"model": ErrorOut, "description": "No such resource for this tenant."},
    413: {"model": ErrorOut, "description": "The request body is too large."},
    422: {"model": ValidationOut, "description": "Invalid input, each error at its field."},
}
ADMIN_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "The route needs an admin key."}
}
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {
        "model": ErrorOut,
        "description": "The resource is in use (an active study), or it changed while the "
        "request ran (read it again and retry).",
    }
}


OVER_LIMIT: dict[int | str, dict[str, object]] = {
    429: {
        "model": OverLimitOut,
        "description": "A limit of the key or tenant is reached: retry once something in use "
        "has ended (Retry-After).",
    }
}


QUOTA_REFUSED: dict[int | str, dict[str, object]] = {
    403: {
        "model": OverLimitOut,
        "description": "Above a quota of the tenant that waiting does not free: change the "
        "request, delete something, or ask an admin to raise the quota.",
    }
}


def non_json_responses(
    media_type: str, description: str, item_schema: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a route that answers ``media_type`` (HTML, an event stream): its
    errors are still the JSON they are. Given a ``model``, FastAPI would document them with
    the route's own media type. A stream's events are described by ``item_schema`` (OpenAPI
    3.2's ``itemSchema``), a document by a string."""
    body = {"itemSchema": item_schema} if item_schema else {"schema": {"type": "string"}}
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": description, "content": {media_type: body}}
    }
    for code, entry in API_ERRORS.items():
        model = cast(type[BaseModel], entry["model"])
        schema = {"$ref": f"#/components/schemas/{model.__name__}"}
        out[code] = {
            "description": entry["description"],
            "content": {"application/json": {"schema": schema}},
        }
    return out


def _item(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, object]:
    return {"loc": list(loc), "path": _path(loc), "msg": msg, "type": kind}


def install_handlers(app: FastAPI) -> None:
    """Register the mapping from errors to responses."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for e in exc.errors():
            # Discriminated unions add the tag to the location ("float"); it is not a field.
            loc = [p for p in e["loc"] if not _union_label(p)]
            if e["type"] == "json_invalid":  # the location's number is a character offset
                loc = ["body"]
            items.append(_item(loc, str(e["msg"]).removeprefix("Value error, "), e["type"]))
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(SpecInvalid)
    async def _spec(_req: Request, exc: SpecInvalid) -> JSONResponse:
        items = [_item(["body", *loc], msg, "value_error") for loc, msg in exc.errors]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(req: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:
            return _unparsable_body(exc)
        allowed = _allowed_methods(req) if exc.status_code == 405 else None
        if allowed:
            # The router's Allow names the methods of the first route at the path only; each
            # method has a route of its own here, so name every one the path has.
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
        return await http_exception_handler(req, exc)

    @app.exception_handler(SQLAlchemyError)
    async def _database(_req: Request, exc: SQLAlchemyError) -> JSONResponse:
        if not transient(exc):
            raise exc  # a bug: the 500 it is, with its traceback in the log
        # The database restarts or is briefly unreachable: nothing was written; try again.
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(OverLimit)
    async def _over(_req: Request, exc: OverLimit) -> JSONResponse:
        body = OverLimitOut(detail=str(exc), quota=exc.quota, limit=exc.limit, usage=exc.usage)
        headers = {"Retry-After": str(exc.retry_after)} if exc.status == 429 else None
        return JSONResponse(body.model_dump(), status_code=exc.status, headers=headers)

    @app.exception_handler(ServiceError)
    async def _service(_req: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def _unparsable_body(exc: HTTPException) -> JSONResponse:
    """A body that cannot be parsed is invalid input like any other: a 422 at ``body``.

    No route here raises a 400: FastAPI and Starlette answer one only when they cannot read the
    body (JSON that is not UTF-8 text, a malformed multipart form), where FastAPI's sentence
    ("There was an error parsing the body") would not say why.
    """
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        msg = f"JSON decode error: the body is not UTF-8 text ({cause.reason}, byte {cause.start})"
        item = _item(["body"], msg, "json_invalid")
    else:
        msg = f"the request body could not be parsed: {exc.detail}"
        item = _item(["body"], msg, "body_invalid")
    return JSONResponse({"detail": [item]}, status_code=422)


def _allowed_methods(req: Request) -> list[str]:
    """Every method the OpenAPI document gives the request's path (for a 405's Allow)."""
    methods: set[str] = set()
    for template, operations in req.app.openapi()["paths"].items():  # cached by FastAPI
        if compile_path(template)[0].match(req.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


_UNION_TAGS = {"float", "int", "categorical", "macro", "cell"}


def _union_label(part: str | int) -> bool:
    """Whether a location part names a union member (a tag, or a type such as
    ``list[StageChoices]``) rather than a field."""
    return isinstance(part, str) and (part in _UNION_TAGS or "[" in part)
