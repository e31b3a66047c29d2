"""What a server worker holds: the model and the index, loaded once, and swapped for the new
version when `semsearch index --append` or `semsearch remove` rewrites the index folder.

No FastAPI here: the routes in `app.py` call `Served.search` / `Served.embed`, which call the
same library functions `semsearch query` calls.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.errors import ConfigError, IndexError_

log = logging.getLogger("semsearch.serve")

API_KEY_ENV = "SEMSEARCH_API_KEY"


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; past these the server answers 413 or 422, never 500."""

    # texts a request (queries for /search, inputs for /v1/embeddings)
    max_texts: int = 64
    # characters a text; the encoder reads max_seq_len tokens anyway, this bounds the tokenizer
    max_chars: int = 4096
    # documents a query returns
    max_k: int = 100

    @property
    def max_body_bytes(self) -> int:
        """A request body larger than this is refused before it is parsed (413)."""
        return self.max_texts * self.max_chars * 4 + 65_536  # UTF-8 is at most 4 bytes a char


@dataclass(frozen=True)
class ServeConfig:
    """`semsearch serve`'s options, as one object a worker process can rebuild from JSON."""

    index: str | None = None  # index folder or name; None: indexes/LATEST, if there is one
    model: str | None = None  # model folder; None: the index's model (or the newest model)
    device: str | None = None  # None: the fast path `semsearch query` takes (numpy on a CPU)
    backend: str | None = None  # torch or onnx; None: the query path's choice (see load_embedder)
    precision: str = "fp32"  # int8: ONNX Runtime's or torch's int8 matrix products (CPU only)
    api_key: str | None = None  # None: no key (the CLI reads $SEMSEARCH_API_KEY as default)
    # the second phase's model folder; None: the one the index records (if any); "none": never
    rescore: str | None = None
    limits: Limits = Limits()

    def to_env(self) -> str:
        import json
        from dataclasses import asdict

        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str) -> ServeConfig:
        import json

        data = json.loads(text)
        return cls(**{**data, "limits": Limits(**data["limits"])})


def search_parameters() -> frozenset[str]:
    """The options `semsearch.querying.search` takes (the fields of its SearchOptions); a request
    option outside them is refused."""
    from semsearch.querying import SearchOptions

    return frozenset(SearchOptions.__dataclass_fields__)


def library_options(options: dict[str, Any]) -> dict[str, Any]:
    """Request options as the keywords `semsearch.querying.search` takes."""
    from semsearch.querying import SearchOptions

    return {"options": SearchOptions(**options)} if options else {}


# queries one `search` call may take when concurrent requests are answered together
MAX_BATCH = 256


@dataclass
class _Pending:
    """A search request waiting for the index thread."""

    queries: list[str]
    k: int
    options: dict[str, Any]
    future: Future = field(default_factory=Future)


class Served:
    """The model and (optionally) the index of one worker.

    Every index operation runs on one thread of its own (SQLite connections belong to the
    thread that opened them), which answers the searches waiting in batches (see `_drain`);
    before each batch the manifest's stat is compared with the one loaded, and a changed index
    is reopened there, between two batches, so no request in flight sees a half-swapped index.
    """

    def __init__(self, config: ServeConfig) -> None:
        from semsearch.index import resolve_index_dir
        from semsearch.index.folder import LATEST, indexes_dir

        self.config = config
        self.started = time.time()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semsearch-index")
        self._index = None
        self._stamp: tuple | None = None
        self._failed_stamp: tuple | None = None
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self.index_dir: Path | None = None
        if config.index is not None or (indexes_dir() / LATEST).is_file():
            self.index_dir = resolve_index_dir(config.index).resolve()
        self._model_lock = threading.Lock()
        self.embedder = None
        self.rescorer = None
        if self.index_dir is not None:
            self._thread.submit(self._open_index).result()
        # an index without vectors (--lexical-only) needs no model: one is loaded (for
        # /v1/embeddings) only when --model names it
        lexical_only = self._index is not None and not self._index.manifest.has_vectors
        if self.embedder is None and (config.model is not None or not lexical_only):
            self.embedder = self._load_embedder(config.model)
        self.parameters = search_parameters()

    # --- loading ---------------------------------------------------------------------------

    def _load_embedder(self, model):
        from semsearch.embedder import load_embedder

        # the query path: numpy on a CPU for batches up to the request limit, as `query` does
        return load_embedder(model, device=self.config.device, texts=self.config.limits.max_texts,
                             backend=self.config.backend, precision=self.config.precision)

    def _open_index(self) -> None:
        """Open (or reopen) the index on the index thread, and the model it needs."""
        from semsearch.embedder import model_for_index
        from semsearch.index import SearchIndex

        stamp = self._manifest_stamp()
        opened = SearchIndex.open(self.index_dir)
        embedder = self.embedder
        if not opened.manifest.has_vectors:
            pass  # BM25 alone: the model loaded (if any) stays, for /v1/embeddings
        elif embedder is None or embedder.fingerprint != opened.manifest.model_fingerprint:
            if embedder is not None and self.config.model is not None:
                opened.close()
                raise IndexError_(
                    f"{self.index_dir} was rebuilt with model {opened.manifest.model_name}; "
                    f"restart the server with --model {opened.manifest.model_path}"
                )
            embedder = self._load_embedder(model_for_index(opened.manifest, self.config.model))
        try:
            rescorer = self._load_rescorer(opened)
        except BaseException:
            opened.close()
            raise
        old, self._index, self._stamp = self._index, opened, stamp
        if self.rescorer is not None:
            self.rescorer.forget()  # its cached chunk vectors belong to the old version
        self.rescorer = rescorer
        with self._model_lock:
            self.embedder = embedder
        if old is not None:
            old.close()
            log.info("reloaded index %s (%d documents)", self.index_dir, opened.manifest.documents)

    def _load_rescorer(self, opened):
        """The second phase's model for the opened index: kept when it is the one loaded
        already (same folder, same weights), loaded once otherwise; None for no second phase."""
        from semsearch.rescoring import check_recorded, load_rescorer, rescore_model_for_index

        if self.config.rescore == "none":
            return None
        wanted = rescore_model_for_index(opened.manifest, opened.folder, self.config.rescore)
        if wanted is None:
            return None
        current = self.rescorer
        if current is not None and current.path.resolve() == Path(wanted).resolve():
            rescorer = current
        else:
            rescorer = load_rescorer(wanted)
        if self.config.rescore is None:
            check_recorded(opened.manifest, rescorer, opened.folder)
        return rescorer

    def _manifest_stamp(self) -> tuple | None:
        from semsearch.index.folder import MANIFEST

        try:
            stat = os.stat(self.index_dir / MANIFEST)
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _fresh_index(self):
        """The index, reopened first when its folder holds a newer version (index thread)."""
        stamp = self._manifest_stamp()
        if stamp is not None and stamp not in (self._stamp, self._failed_stamp):
            try:
                self._open_index()
            except Exception as error:  # noqa: BLE001 - a broken new version: keep the old one
                log.warning("kept the loaded index; the new version did not open: %s", error)
                self._failed_stamp = stamp  # tried again only once the manifest changes again
        return self._index

    # --- the two things a request asks for -------------------------------------------------

    def search(self, queries: list[str], k: int, options: dict[str, Any]) -> list[list[dict]]:
        """Hits for each query, each hit the dict `semsearch query --json` prints a line of."""
        if self.index_dir is None:
            raise IndexError_(
                "this server has no index; restart it with --index DIR (build one with "
                "`semsearch index CORPUS`)"
            )
        unknown = sorted(set(options) - self.parameters)
        if unknown:
            raise ConfigError(f"this semsearch's search takes no {', '.join(unknown)}")
        request = _Pending(queries, k, options)
        with self._pending_lock:
            self._pending.append(request)
        self._thread.submit(self._drain)
        return request.future.result()

    def _drain(self) -> None:
        """Answer every search waiting, on the index thread: requests with the same k and
        options go through `search` together, up to MAX_BATCH queries a call, so concurrent
        clients share one encoder pass and one FAISS call. A failing batch is retried one
        request at a time, so one bad request fails alone."""
        with self._pending_lock:
            waiting, self._pending = self._pending, []
        if not waiting:
            return
        try:
            index = self._fresh_index()
        except BaseException as error:  # noqa: BLE001 - handed to every waiting request
            for request in waiting:
                request.future.set_exception(error)
            return
        groups: dict[str, list[_Pending]] = {}
        for request in waiting:
            key = json.dumps([request.k, request.options], sort_keys=True, default=str)
            groups.setdefault(key, []).append(request)
        for requests in groups.values():
            batch: list[_Pending] = []
            for request in requests:
                if batch and sum(len(r.queries) for r in batch) + len(request.queries) > MAX_BATCH:
                    self._answer(index, batch)
                    batch = []
                batch.append(request)
            self._answer(index, batch)

    def _answer(self, index, batch: list[_Pending]) -> None:
        from semsearch.querying import search

        first = batch[0]
        queries = [query for request in batch for query in request.queries]
        try:
            results = search(index, self.embedder, queries, first.k, rescorer=self.rescorer,
                             **library_options(first.options))
        except BaseException as error:  # noqa: BLE001 - handed to the request(s)
            if len(batch) == 1:
                first.future.set_exception(error)
            else:
                for request in batch:
                    self._answer(index, [request])
            return
        start = 0
        for request in batch:
            hits = results[start:start + len(request.queries)]
            start += len(request.queries)
            request.future.set_result([[{"query": query, **hit.to_dict()} for hit in found]
                                       for query, found in zip(request.queries, hits,
                                                               strict=True)])

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """(vectors, tokens read): L2-normalised float32 rows, one a text."""
        embedder = self.embedder
        if embedder is None:
            raise ConfigError("this server has no model (its index has no vectors); restart it "
                              "with --model DIR to embed texts")
        vectors = np.asarray(embedder.encode(texts), dtype=np.float32)
        tokens = sum(min(n, embedder.max_seq_len) for n in embedder.count_tokens(texts))
        return vectors, tokens

    def health(self) -> dict[str, Any]:
        embedder = self.embedder
        payload: dict[str, Any] = {
            "status": "ok",
            "model": None if embedder is None else {
                "name": embedder.name, "fingerprint": embedder.fingerprint,
                "dim": embedder.dim, "max_seq_len": embedder.max_seq_len},
            "index": None,
            "uptime_s": round(time.time() - self.started, 1),
        }
        index = self._index
        if index is not None:
            manifest = index.manifest
            payload["index"] = {"path": str(self.index_dir), "documents": manifest.documents,
                                "vectors": manifest.count, "updated": manifest.updated,
                                "factory": manifest.recipe.get("factory")}
            if manifest.lexical:
                from semsearch.index.fusion import describe_fusion, index_fusion

                payload["index"]["fusion"] = describe_fusion(*index_fusion(manifest))
        rescorer = self.rescorer
        payload["rescore"] = None
        if rescorer is not None:
            payload["rescore"] = {**rescorer.describe(), "cache": rescorer.stats()}
            if index is not None:
                mode = "hybrid" if index.lexical is not None else "dense"
                settings, source = rescorer.settings_for(index.manifest.model_fingerprint, mode)
                payload["rescore"].update(depth=settings.depth, weight=settings.weight,
                                          calibrated=source == "calibrated")
        return payload

    def close(self) -> None:
        def shut() -> None:
            if self._index is not None:
                self._index.close()
                self._index = None

        self._thread.submit(shut).result()
        self._thread.shutdown()
