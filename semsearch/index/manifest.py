"""manifest.json: what an index folder holds and how it was made; `load` checks the version."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from semsearch.errors import IndexError_

FORMAT = "semsearch-index"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """Everything needed to reopen and trust an index folder."""

    model_name: str
    model_fingerprint: str  # 16 hex chars of the encoder weights: queries must match it
    model_path: str  # where the model was when the index was built (query's default model)
    dim: int
    count: int  # vectors (chunks) in the FAISS index
    documents: int  # documents in the store
    next_row: int  # the FAISS id the next appended chunk gets (ids are never reused)
    recipe: dict  # IndexRecipe.to_dict(): factory string, nprobe, ef_search, rerank, ...
    chunking: dict  # {"max_tokens": ..., "overlap": ...}
    corpora: list[dict] = field(default_factory=list)  # path, sha256, documents, time: one an add
    trained_on: int = 0  # vectors the IVF / PQ stage was trained on
    # how the build's vectors were computed (fp32 or int8; each corpora entry has its own). Not
    # part of the model check: int8 vectors of the same weights stay close to fp32 ones, so
    # queries in either precision search the index
    precision: str = "fp32"
    # the BM25 side (LexicalConfig.to_dict() plus its chunk count); None: an index built before
    # semsearch had one, searched dense only
    lexical: dict | None = None
    # how hybrid search fuses the two sides (FusionConfig.to_dict()), from the model's
    # calibration when it had one
    fusion: dict | None = None
    # the default second phase (semsearch.rescoring): the rescoring model's name, path and
    # fingerprint, as `index --rescore MODEL` recorded it; None: no second phase by default
    rescore: dict | None = None
    engine: str = "local"  # how the vectors were made: local, or ray (in shards on a cluster)
    shards: int = 0  # shards a ray build embedded the corpus in (0: local)
    created: str = ""
    updated: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def has_vectors(self) -> bool:
        """False for an index built with --lexical-only: no model, FAISS index or vectors."""
        from semsearch.index.recipe import records_vectors

        return records_vectors(self.recipe)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read and check a manifest, as IndexError_ when missing, corrupt or of another version."""
        path = Path(path)
        fix = f"rebuild with `semsearch index CORPUS --out {path.parent}`"
        if not path.is_file():
            raise IndexError_(f"{path.parent} is not an index folder (no manifest.json); {fix}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise IndexError_(f"{path} is corrupt ({error}); {fix}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IndexError_(f"{path} is not a semsearch index manifest; {fix}")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexError_(
                f"{path.parent} has index format version {data.get('format_version')}, this "
                f"semsearch reads version {FORMAT_VERSION}; {fix}"
            )
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        try:
            manifest = cls(**known)
        except TypeError as error:
            raise IndexError_(f"{path} is incomplete ({error}); {fix}") from None
        wrong = _wrong_types(known)
        if wrong:
            raise IndexError_(f"{path} has a malformed field {wrong}; {fix}")
        return manifest


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_TYPES = {"str": str, "int": int, "dict": dict, "float": float}


def _wrong_types(data: dict) -> str | None:
    """The first field whose JSON value has the wrong type (a recipe that is a string, a count
    that is negative), as "name (what it is)"; None when all are right."""
    for name, declared in Manifest.__annotations__.items():
        if name not in data:
            continue
        value = data[name]
        kind = str(declared).split("[")[0]
        expected = _TYPES.get(kind, list if kind == "list" else None)
        if expected is None:
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return f"{name!r} ({type(value).__name__}, expected {kind})"
        if expected is int and value < 0:
            return f"{name!r} ({value}, expected a count >= 0)"
        if name == "corpora" and not all(isinstance(entry, dict) for entry in value):
            return f"{name!r} (expected a list of objects)"
    recipe = data.get("recipe", {})
    if not isinstance(recipe.get("factory"), str) or not recipe["factory"]:
        return "'recipe.factory' (expected a FAISS factory string)"
    for key in ("nprobe", "ef_search", "rerank", "train_size"):
        value = recipe.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            return f"'recipe.{key}' ({value!r}, expected a whole number >= 0)"
    return None
