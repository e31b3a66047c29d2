"""What the HTTP API answers, as pydantic models: the OpenAPI schema at /openapi.json declares
each endpoint's 200 body and its error bodies from these, and FastAPI serialises every answer
through them, so the schema and the server cannot drift apart (schemathesis checks it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str = Field(description="what was wrong and what to do, in one line")
    type: str = Field(description="invalid_request_error, authentication_error or server_error")
    code: int = Field(description="the HTTP status again")


class ErrorBody(BaseModel):
    """Every answer other than 200, in OpenAI's error shape so its clients show the message."""

    error: ErrorDetail


class Hit(BaseModel):
    """One line of `semsearch query --json`: a document and its best-matching chunk."""

    query: str
    rank: int = Field(ge=1)
    score: float = Field(description="cosine similarity, BM25 score or fused score by mode")
    id: str
    chunk: int = Field(ge=0, description="0-based chunk of the document that matched")
    chunks: int = Field(ge=1)
    text: str = Field(description="the chunk's text")
    metadata: dict[str, Any]
    dense_score: float | None
    dense_rank: int | None
    lexical_score: float | None
    lexical_rank: int | None
    rescore_score: float | None = Field(
        None, description="the rescoring model's cosine (second phase); the three second-phase "
        "fields are absent where no second phase ran, as in `semsearch query --json`")
    rescore_rank: int | None = Field(None, description="rank by that cosine among the candidates")
    first_rank: int | None = Field(None, description="the rank the first stage gave the document "
                                   "(null: past the second phase's depth)")


class SearchAnswer(BaseModel):
    query: str
    hits: list[Hit]
    model: str | None = Field(description="the served model's name (None: no model, an index "
                              "without vectors)")
    index: str | None = Field(description="the served index folder")


class QueryHits(BaseModel):
    query: str
    hits: list[Hit]


class BatchSearchAnswer(BaseModel):
    results: list[QueryHits] = Field(description="one a query, in the order given")
    model: str | None
    index: str | None


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int = Field(ge=0)
    embedding: list[float] | str = Field(
        description="floats, or base64 of little-endian float32 for encoding_format=base64")


class Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class EmbeddingsAnswer(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelInfo(BaseModel):
    name: str
    fingerprint: str
    dim: int
    max_seq_len: int


class FusionInfo(BaseModel):
    """How the index's hybrid search fuses, and whether that was calibrated for its model."""

    setting: str
    calibrated: bool
    source: Literal["index", "model", "default"]
    note: str


class IndexInfo(BaseModel):
    path: str
    documents: int
    vectors: int
    updated: str
    factory: str | None
    fusion: FusionInfo | None = None  # absent for an index with no lexical part


class CacheInfo(BaseModel):
    entries: int = Field(ge=0, description="chunk vectors held")
    capacity: int = Field(ge=0)
    hits: int = Field(ge=0)
    misses: int = Field(ge=0)
    hit_rate: float | None = Field(description="hits / lookups since start; null before any")


class RescoreInfo(BaseModel):
    """The second phase: the rescoring model, its default depth and weight for the served
    index's first stage, and its cache of chunk vectors."""

    name: str
    path: str
    fingerprint: str
    precision: str
    window: int
    cache: CacheInfo
    depth: int | None = None
    weight: float | None = None
    calibrated: bool | None = None


class Health(BaseModel):
    status: Literal["ok"]
    model: ModelInfo | None  # None: an index without vectors served with no --model
    index: IndexInfo | None
    rescore: RescoreInfo | None = None
    uptime_s: float


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with the error body and what it means."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]}
            for status in statuses}


ERROR_MEANINGS = {
    401: "missing or wrong API key (when the server runs with --api-key)",
    409: "the served index cannot answer: there is none, it is broken (rebuild or restart), it "
         "has no vectors (a dense search) or the server no model (an embedding), a filter names "
         "a metadata field none of its documents has, or rescore=true where the server has no "
         "rescoring model",
    413: "request too large: more texts, longer texts or a larger body than the limits",
    422: "invalid request: a field of the wrong type or out of bounds, an empty query, ...",
}

# the ways to send the key (any one will do), as OpenAPI security schemes
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "Authorization: Bearer KEY (what OpenAI's clients send)"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "basic": {"type": "http", "scheme": "basic",
              "description": "any user name, the key as password (the search page in a browser)"},
}
