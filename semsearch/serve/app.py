"""The HTTP layer: parse, call `Served`, serialise. No search logic lives in a route.

    GET  /search?q=...&k=5        one query           POST /search          many queries
    POST /v1/embeddings           OpenAI-compatible   GET  /health          no key needed
    GET  /                        the search page     GET  /docs, /redoc    OpenAPI pages

/docs and /redoc load Swagger UI and ReDoc from the package (fastapi-offline), not from a CDN,
so they work offline; /openapi.json declares every answer (`schema.py`) and, with --api-key,
the key as a security scheme.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from semsearch import __version__
from semsearch.errors import IndexError_, NoRescorer, SemsearchError, UnknownFieldError
from semsearch.limits import MAX_EF_SEARCH, MAX_NPROBE, MAX_RESCORE_DEPTH
from semsearch.serve import schema
from semsearch.serve.page import render_page
from semsearch.serve.state import Limits, ServeConfig, Served

log = logging.getLogger("semsearch.serve")

CONFIG_ENV = "SEMSEARCH_SERVE_CONFIG"  # how `serve --workers N` hands its options to each worker
OPEN_PATHS = frozenset({"/health"})
MALFORMED_JSON = "malformed JSON body; send a JSON object (Content-Type: application/json)"
DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's scripts, styles and icon


class ApiError(Exception):
    """An answer other than 200, with a message for the person who sent the request."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _clean(text: str) -> str:
    """Refuse text no index or tokenizer should see: NUL bytes and lone surrogates."""
    if "\x00" in text:
        raise ValueError("text contains a NUL byte")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return text


def _a_json_number(value: Any) -> Any:
    """Refuse true / false and strings where JSON numbers are asked for: pydantic's lax mode
    would read true as 1 and "5" as 5 (its strict mode also refuses 5.0, which JSON Schema
    counts as an integer)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


JSON_NUMBER = BeforeValidator(_a_json_number)
# the bounds sit inside the Annotated, before the validator: given as Field(ge=...) of an
# `Annotated[...] | None`, or after it, pydantic checks them but writes "ge" / "le" into the
# JSON schema (not minimum / maximum), so the schema would not say them
Depth = Annotated[int, Field(ge=1, le=10_000), JSON_NUMBER]
NProbe = Annotated[int, Field(ge=1, le=MAX_NPROBE), JSON_NUMBER]
EfSearch = Annotated[int, Field(ge=1, le=MAX_EF_SEARCH), JSON_NUMBER]
Weight = Annotated[float, Field(ge=0.0, le=1.0), JSON_NUMBER]
RescoreDepth = Annotated[int, Field(ge=1, le=MAX_RESCORE_DEPTH), JSON_NUMBER]
Dimensions = Annotated[int, Field(ge=1), JSON_NUMBER]


class SearchOptions(BaseModel):
    """The query options `semsearch query` has, under the same names; they become the library's
    `semsearch.querying.SearchOptions` (see `Served.search`)."""

    model_config = ConfigDict(extra="forbid")

    k: Annotated[int, JSON_NUMBER] = Field(5, ge=1, description="documents to return a query")
    mode: Literal["hybrid", "dense", "lexical"] | None = Field(
        None, description="hybrid (vectors and BM25 fused; the default where the index has a "
        "lexical part), dense or lexical")
    fusion: Literal["weighted", "rrf"] | None = Field(None, description="how hybrid fuses")
    dense_weight: Weight | None = Field(None,
                                       description="weighted fusion's share of the dense score")
    depth: Depth | None = Field(None,
                              description="documents each side hands to fusion")
    where: dict[str, str | bool | int | float] | None = Field(
        None, description="metadata filters, field: value; all must hold")
    nprobe: NProbe | None = Field(None, description="IVF lists to search")
    ef_search: EfSearch | None = Field(None,
                                  description="HNSW candidate list size")
    rescore: bool | None = Field(None, description="the second phase: false turns it off "
                                 "(default: on where the server has a rescoring model)")
    rescore_depth: RescoreDepth | None = Field(
        None, description="first-stage documents the second phase re-scores")
    rescore_weight: Weight | None = Field(
        None, description="the rescoring cosine's share against BM25")

    def search_options(self) -> dict[str, Any]:
        """The options given (not k), by name; `where` as (field, value) string pairs."""
        given = {name: value for name, value in self.model_dump(exclude={"k", "queries"}).items()
                 if value is not None}
        if "where" in given:
            given["where"] = tuple((field, _where_value(value))
                                   for field, value in given["where"].items())
        return given


class SearchRequest(SearchOptions):
    queries: list[str] = Field(min_length=1, description="query texts, one search each")

    @field_validator("queries")
    @classmethod
    def _texts(cls, queries: list[str]) -> list[str]:
        return [_clean(query) for query in queries]


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; `model` is accepted and the served model answers."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(description="a text or a list of texts")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Dimensions | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> str | list[str]:
        return _clean(value) if isinstance(value, str) else [_clean(text) for text in value]


def create_app(config: ServeConfig | None = None, served: Served | None = None) -> FastAPI:
    """The app for `config` (default: from $SEMSEARCH_SERVE_CONFIG, as each worker reads it)."""
    if config is None:
        text = os.environ.get(CONFIG_ENV)
        config = ServeConfig.from_env(text) if text else ServeConfig()
    served = served or Served(config)
    limits = config.limits

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        served.close()

    # FastAPI's own /docs and /redoc load their scripts from a CDN (blank offline);
    # fastapi-offline serves the same Swagger UI and ReDoc from files in its package
    app = FastAPIOffline(title="semsearch", version=__version__, lifespan=lifespan,
                         description="Search an index and embed texts with a semsearch model.",
                         static_url=DOCS_ASSETS)
    app.state.served = served
    app.openapi = lambda: _openapi(app, config, getattr(served.embedder, "dim", 0))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if config.api_key and request.url.path not in OPEN_PATHS:
            if not _authorised(request, config.api_key):
                headers = {"WWW-Authenticate": 'Basic realm="semsearch"'}
                return _error(401, "missing or wrong API key; send `Authorization: Bearer KEY`",
                              "authentication_error", headers)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            return _error(413, f"request body over {limits.max_body_bytes} bytes; send fewer or "
                          "shorter texts")
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return _error(error.status, error.message, error.kind)

    @app.exception_handler(SemsearchError)
    async def library_error(request: Request, error: SemsearchError):
        # 409: the request is well formed but the served index cannot answer it (no index, a
        # broken one, a filter on a field none of its documents has, a second phase where the
        # server has no rescoring model); 422: the request is wrong
        status = 409 if isinstance(error, IndexError_ | UnknownFieldError | NoRescorer) else 422
        return _error(status, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        return _error(422, _describe(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if isinstance(error.__cause__, UnicodeDecodeError):
            # FastAPI's 400 "error parsing the body" for bytes that are not UTF-8: malformed JSON
            # (RFC 8259 text is UTF-8), answered as every other malformed body is
            return _error(422, MALFORMED_JSON + " in UTF-8")
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception):
        log.exception("error answering %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server log has the details", "server_error")

    def check_texts(texts: list[str], what: str) -> None:
        if len(texts) > limits.max_texts:
            raise ApiError(413, f"{len(texts)} {what} in one request; at most {limits.max_texts}")
        for number, text in enumerate(texts):
            if len(text) > limits.max_chars:
                raise ApiError(413, f"{what} {number} has {len(text)} characters; at most "
                               f"{limits.max_chars}")

    def run_search(queries: list[str], options: SearchOptions) -> list[list[dict]]:
        check_texts(queries, "queries")
        if options.k > limits.max_k:
            raise ApiError(422, f"k={options.k}; at most {limits.max_k}")
        if any(not query.strip() for query in queries):
            raise ApiError(422, "empty query; give some text")
        return served.search(queries, options.k, options.search_options())

    @app.get("/search", summary="Search the index for one query",
             response_model=schema.SearchAnswer, response_model_exclude_unset=True,
             responses=schema.errors(409, 413, 422))
    async def search_get(
        q: Annotated[str, Query(description="the query text")],
        k: Annotated[int, Query(ge=1)] = 5,
        mode: Annotated[Literal["hybrid", "dense", "lexical"] | None, Query()] = None,
        fusion: Annotated[Literal["weighted", "rrf"] | None, Query()] = None,
        dense_weight: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
        depth: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        where: Annotated[list[str] | None, Query(
            description="FIELD=VALUE, repeatable (all must hold), as `query --where`")] = None,
        nprobe: Annotated[int | None, Query(ge=1, le=MAX_NPROBE)] = None,
        ef_search: Annotated[int | None, Query(ge=1, le=MAX_EF_SEARCH)] = None,
        rescore: Annotated[bool | None, Query(
            description="false: no second phase for this request")] = None,
        rescore_depth: Annotated[int | None, Query(ge=1, le=MAX_RESCORE_DEPTH)] = None,
        rescore_weight: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    ):
        try:
            options = SearchOptions(k=k, mode=mode, fusion=fusion, dense_weight=dense_weight,
                                    depth=depth, where=_parse_where(where), nprobe=nprobe,
                                    ef_search=ef_search, rescore=rescore,
                                    rescore_depth=rescore_depth, rescore_weight=rescore_weight)
        except ValidationError as error:
            raise ApiError(422, _describe(error)) from None
        hits = await run_in_threadpool(run_search, [_text(q)], options)
        return {"query": q, "hits": hits[0], **_served(served)}

    @app.post("/search", summary="Search the index for many queries",
              response_model=schema.BatchSearchAnswer, response_model_exclude_unset=True,
              responses=schema.errors(409, 413, 422))
    async def search_post(body: SearchRequest):
        results = await run_in_threadpool(run_search, body.queries, body)
        return {"results": [{"query": query, "hits": hits}
                            for query, hits in zip(body.queries, results, strict=True)],
                **_served(served)}

    @app.post("/v1/embeddings", summary="Embed texts (OpenAI-compatible)",
              response_model=schema.EmbeddingsAnswer, responses=schema.errors(409, 413, 422))
    async def embeddings(body: EmbeddingRequest):
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts:
            raise ApiError(422, "input is empty; give a text or a list of texts")
        check_texts(texts, "inputs")
        if served.embedder is None:
            raise ApiError(409, "this server has no model (its index has no vectors); restart "
                           "it with --model DIR to embed texts")
        dim = served.embedder.dim
        if body.dimensions is not None and body.dimensions != dim:
            raise ApiError(422, f"this model gives {dim} dimensions, not {body.dimensions}")
        vectors, tokens = await run_in_threadpool(served.embed, texts)
        data = [{"object": "embedding", "index": i,
                 "embedding": (base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                               if body.encoding_format == "base64" else row.tolist())}
                for i, row in enumerate(vectors)]
        return {"object": "list", "data": data, "model": served.embedder.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.get("/health", summary="Model, index and uptime; needs no key",
             response_model=schema.Health, responses=schema.errors(413))
    async def health():
        return served.health()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(q: str = "", k: int = 10) -> HTMLResponse:
        hits, message = None, None
        k = min(max(1, k), limits.max_k)
        if q.strip():
            try:
                hits = (await run_in_threadpool(run_search, [_text(q)], SearchOptions(k=k)))[0]
            except ApiError as error:
                message = error.message
            except SemsearchError as error:
                message = str(error)
        html = render_page(q, k, hits, message, served.health())
        return HTMLResponse(html, headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff"})

    return app


def _openapi(app: FastAPI, config: ServeConfig, dim: int) -> dict:
    """The OpenAPI schema: this server's limits on each text field, and with a key the key as a
    security scheme on every operation that needs it (all but /health) and its 401 answer."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
        _declare_limits(document, config.limits, dim)
        if config.api_key:
            document.setdefault("components", {})["securitySchemes"] = schema.SECURITY_SCHEMES
            unauthorised = {"description": schema.ERROR_MEANINGS[401], "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            for path, operations in document["paths"].items():
                if path in OPEN_PATHS:
                    continue
                for operation in operations.values():
                    operation["security"] = [{name: []} for name in schema.SECURITY_SCHEMES]
                    operation["responses"]["401"] = unauthorised
        app.openapi_schema = document
    return app.openapi_schema


# Python's white space (what str.strip() removes, so what the routes call empty), spelled out:
# a schema's \s is ECMAScript's, which lacks U+001C-U+001F and U+0085 and has U+FEFF
SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# a text holds no NUL (see `_clean`); a query also something to search for, a character other
# than white space; a filter is FIELD=VALUE with a field name that is not blank
TEXT_PATTERN = r"^[^\x00]*$"
QUERY_PATTERN = f"^[^\\x00]*[^\\x00{SPACE}][^\\x00]*$"
WHERE_PATTERN = f"^[^=\\x00]*[^=\\x00{SPACE}][^=\\x00]*=[^\\x00]*$"


def _declare_limits(document: dict, limits: Limits, dim: int) -> None:
    """Write the limits this server's routes check (`check_texts`, `run_search`) into the schema,
    so that what it declares valid is what it accepts: texts a request, characters a text, k,
    a query with some text, and the one `dimensions` the model gives."""
    query = {"maxLength": limits.max_chars, "pattern": QUERY_PATTERN}
    text = {"type": "string", "maxLength": limits.max_chars, "pattern": TEXT_PATTERN}
    for parameter in document["paths"]["/search"]["get"]["parameters"]:
        if parameter["name"] == "q":
            parameter["schema"].update(query)
        elif parameter["name"] == "k":
            parameter["schema"]["maximum"] = limits.max_k
        elif parameter["name"] == "where":
            parameter["schema"]["anyOf"][0]["items"]["pattern"] = WHERE_PATTERN
    models = document["components"]["schemas"]
    search = models["SearchRequest"]["properties"]
    search["k"]["maximum"] = limits.max_k
    search["queries"].update(maxItems=limits.max_texts)
    search["queries"]["items"].update(query)
    embed = models["EmbeddingRequest"]["properties"]
    embed["input"]["anyOf"] = [text, {"type": "array", "items": text, "minItems": 1,
                                      "maxItems": limits.max_texts}]
    embed["dimensions"]["anyOf"][0]["enum"] = [dim]


def _text(text: str, what: str = "q") -> str:
    try:
        return _clean(text)
    except ValueError as error:
        raise ApiError(422, f"{what}: {error}") from None


def _parse_where(items: list[str] | None) -> dict | None:
    """Repeated FIELD=VALUE query parameters as a dict (the value may hold '=')."""
    if not items:
        return None
    where = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise ApiError(422, f"where: {item!r} is not FIELD=VALUE, e.g. where=lang=en")
        where[_text(name.strip(), "where")] = _text(value, "where")
    return where


def _where_value(value: str | bool | int | float) -> str:
    """A filter value as the metadata store compares it: as text (`year=2015` matches 2015),
    JSON true / false as 1 / 0, as the library's `search(where=...)` takes them.

    >>> [_where_value(v) for v in ("en", 2015, True, False)]
    ['en', '2015', '1', '0']
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _served(served: Served) -> dict:
    health = served.health()
    return {"model": health["model"]["name"] if health["model"] else None,
            "index": health["index"]["path"] if health["index"] else None}


def _authorised(request: Request, key: str) -> bool:
    """Bearer token, X-API-Key header, or HTTP Basic password (for the page in a browser),
    compared in constant time."""
    given = request.headers.get("x-api-key", "")
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except ValueError:
            given = ""
    return hmac.compare_digest(given.encode("utf-8"), key.encode("utf-8"))


def _describe(error: RequestValidationError | ValidationError) -> str:
    """One line naming each bad field, without echoing the input back."""
    parts = []
    for problem in error.errors()[:5]:
        if problem.get("type") == "json_invalid":
            return MALFORMED_JSON
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        message = problem.get("msg", "invalid")
        if problem.get("type") == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where or 'body'}: {message}")
    return "; ".join(parts) or "invalid request"


def _error(status: int, message: str, kind: str = "invalid_request_error",
           headers: dict | None = None) -> JSONResponse:
    """OpenAI's error shape, so its clients show the message."""
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}},
                        status_code=status, headers=headers)
