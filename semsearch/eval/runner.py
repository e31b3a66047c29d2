"""The evaluation run: every task scored by the model and by the TF-IDF baseline, as one report.

Each task takes an `embed` function (a list of texts -> L2-normalised rows, dense or sparse), so
the model, the baseline and a test's fake embedder go through the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.eval.metrics import paired_cosine, pearson, spearman
from semsearch.eval.pairs import LabelledPair
from semsearch.eval.retrieval import RetrievalSet, evaluate_retrieval, snli_retrieval_set
from semsearch.eval.tfidf import tfidf_vectors
from semsearch.progress import Meter, Metered

Embed = Callable[[list[str]], Any]

REPORT_FORMAT = 1
# The reference recipe's promises for a trained model: clearly similar pairs score above 0.7
# cosine, clearly dissimilar ones below 0.5, and the two means stand more than 0.2 apart.
THRESHOLDS = {"similar": 0.7, "dissimilar": 0.5, "gap": 0.2}
# STS-B gold scores (0-5) that count as clearly similar / clearly dissimilar.
SIMILAR_GOLD, DISSIMILAR_GOLD = 4.0, 1.0
RETRIEVAL_KS = (1, 10)
RETRIEVAL_METRICS = ("recall@1", "recall@10", "mrr@10", "ndcg@10")


def unique_embed(embed: Embed) -> Embed:
    """Wrap `embed` so each distinct text is embedded once; rows come back in input order."""

    def embed_unique(texts: list[str]):
        distinct = list(dict.fromkeys(texts))
        position = {text: i for i, text in enumerate(distinct)}
        vectors = embed(distinct)
        return vectors[[position[text] for text in texts]]

    return embed_unique


def score_pairs(embed: Embed, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Cosine similarity of each (text_a, text_b) pair, embedded in one call."""
    firsts = [a for a, _ in pairs]
    vectors = unique_embed(embed)(firsts + [b for _, b in pairs])
    return paired_cosine(vectors[: len(firsts)], vectors[len(firsts) :])


def sts_scores(embed: Embed, pairs: Sequence) -> dict[str, float]:
    """Spearman and Pearson x100 of cosine against the gold score of `ScoredPair`s."""
    cosines = score_pairs(embed, [(p.sentence1, p.sentence2) for p in pairs])
    gold = [p.score for p in pairs]
    return {"spearman": spearman(cosines, gold), "pearson": pearson(cosines, gold)}


def separation(
    similar: Sequence[float], dissimilar: Sequence[float], thresholds: dict = THRESHOLDS
) -> dict[str, Any]:
    """Mean cosine of similar and of dissimilar pairs, their gap, and pass/fail of each against
    the recipe's thresholds (None where there were no pairs to judge)."""
    similar_mean = float(np.mean(similar)) if len(similar) else None
    dissimilar_mean = float(np.mean(dissimilar)) if len(dissimilar) else None
    gap = None if similar_mean is None or dissimilar_mean is None else similar_mean - dissimilar_mean
    return {
        "similar_mean": similar_mean,
        "dissimilar_mean": dissimilar_mean,
        "gap": gap,
        "similar_pairs": len(similar),
        "dissimilar_pairs": len(dissimilar),
        "pass": {
            "similar": None if similar_mean is None else similar_mean > thresholds["similar"],
            "dissimilar": None
            if dissimilar_mean is None
            else dissimilar_mean < thresholds["dissimilar"],
            "gap": None if gap is None else gap > thresholds["gap"],
        },
    }


def stsb_separation(embed: Embed, pairs: Sequence) -> dict[str, Any]:
    """`separation` over the STS-B pairs with gold >= 4 (similar) and <= 1 (dissimilar)."""
    cosines = score_pairs(embed, [(p.sentence1, p.sentence2) for p in pairs])
    gold = np.array([p.score for p in pairs])
    return separation(cosines[gold >= SIMILAR_GOLD], cosines[gold <= DISSIMILAR_GOLD])


def meets_expectation(expected: str | None, score: float, thresholds: dict = THRESHOLDS) -> bool | None:
    """Whether one pair's cosine meets its label: similar > 0.7, dissimilar < 0.5."""
    if expected == "similar":
        return score > thresholds["similar"]
    if expected == "dissimilar":
        return score < thresholds["dissimilar"]
    return None


def pairs_report(embeds: dict[str, Embed], pairs: Sequence[LabelledPair]) -> dict[str, Any]:
    """Each hand-written pair's cosine under every method, and per method the `separation` of
    the pairs labelled similar and dissimilar plus how many pairs met their label."""
    rows = [{"text_a": p.text_a, "text_b": p.text_b, "expected": p.expected} for p in pairs]
    report: dict[str, Any] = {"pairs": rows}
    for method, embed in embeds.items():
        scores = score_pairs(embed, [(p.text_a, p.text_b) for p in pairs])
        for row, score in zip(rows, scores, strict=True):
            row[method] = float(score)
        summary = separation(
            [s for p, s in zip(pairs, scores, strict=True) if p.expected == "similar"],
            [s for p, s in zip(pairs, scores, strict=True) if p.expected == "dissimilar"],
        )
        summary["met"] = sum(
            bool(meets_expectation(p.expected, s)) for p, s in zip(pairs, scores, strict=True)
        )
        report[method] = summary
    return report


def model_kind(config: dict | None) -> str:
    """How the model was made, from its config.json: imported, distilled from a teacher, adapted
    from another model, or trained from scratch.

    >>> model_kind({"train": {"teacher": "models/minilm"}})
    'distilled from models/minilm'
    """
    config = config or {}
    if (config.get("model") or {}).get("kind") == "static":
        run = config.get("run") or {}
        made = (f"distilled from {run['teacher']}" if run.get("teacher") else "from scratch")
        return f"static ({made})"
    if (config.get("run") or {}).get("teacher"):
        return f"distilled from {config['run']['teacher']} on unlabelled text"
    if config.get("imported_from"):
        return f"imported ({config['imported_from']})"
    teacher = (config.get("train") or {}).get("teacher")
    kind = f"distilled from {teacher}" if teacher else "from scratch"
    return kind + (f", adapted from {config['init_from']}" if config.get("init_from") else "")


def contamination_warnings(config: dict | None) -> list[str]:
    """Warnings for evaluation sets that the model's training mixture names (config "data"
    "sources", a mixture name expanded, and the keys of "data_report"), since a score on data
    the model was trained on says little."""
    from semsearch.data import MIXTURES

    config = config or {}
    sources = []
    for source in (config.get("data") or {}).get("sources") or []:
        sources += MIXTURES.get(source, (source,)) if isinstance(source, str) else [source]
    sources += list(config.get("data_report") or {})
    found: dict[str, str] = {}  # evaluated set -> the first source that names it
    for source in sources:
        source = source if isinstance(source, str) else json.dumps(source, sort_keys=True)
        words = set(re.split(r"[^a-z0-9]+", source.lower()))
        stsb = any(word.startswith("sts") for word in words)
        for named, split, name in (
            ("snli" in words, "test", "SNLI test"),
            (stsb, "test", "STS-B test"),
            (stsb, "dev", "STS-B dev"),
        ):
            if named and split in words:
                found.setdefault(name, source)
    return [
        f"{name} is in the model's training mixture ({source}), so its {name} numbers are "
        f"contaminated; retrain without it for a fair score"
        for name, source in found.items()
    ]


def limit_retrieval_set(retrieval_set: RetrievalSet, limit: int) -> RetrievalSet:
    """The first `limit` judged queries, over their relevant documents plus the first `limit`
    documents of the corpus: a quick, smaller (and easier) version of the set."""
    query_ids = [q for q in retrieval_set.queries if q in retrieval_set.qrels][:limit]
    keep = set(list(retrieval_set.corpus)[:limit])
    keep.update(doc for q in query_ids for doc in retrieval_set.qrels[q])
    return RetrievalSet(
        name=retrieval_set.name,
        queries={q: retrieval_set.queries[q] for q in query_ids},
        corpus={d: text for d, text in retrieval_set.corpus.items() if d in keep},
        qrels={q: retrieval_set.qrels[q] for q in query_ids},
    )


def evaluate(
    encoder,
    data_dir: str | Path | None = None,
    retrieval_dirs: Sequence[str | Path] = (),
    search_sets: Sequence[tuple[str | Path, str]] = (),
    pairs: Sequence[LabelledPair] | None = None,
    pairs_file: str | None = None,
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
    clustering: bool = True,
) -> dict[str, Any]:
    """Evaluate `encoder` (a loaded SentenceEncoder) and the TF-IDF baseline, returning the report.

    Tasks: STS-B test and dev (Spearman, Pearson x100 of cosine vs gold); similarity separation
    on STS-B test (gold >= 4 vs <= 1) and on the user's hand-written `pairs`; retrieval on SNLI
    test (each premise a query over every entailed hypothesis) and on each BEIR folder in
    `retrieval_dirs`; BM25, dense and hybrid through the search path on each (BEIR folder, split)
    of `search_sets` (see semsearch.eval.search_eval), with the fusion calibrated over them
    (report["search"]["fusion"]). `limit` keeps the first N pairs (or queries) of each set.
    Missing data raises DataError from the loader, naming the file and where it looked.
    """
    from semsearch import __version__
    from semsearch.data import load_snli, load_stsb
    from semsearch.eval.beir import read_beir

    started = time.perf_counter()
    meter = Meter(None, "evaluation: encoded", log)  # no bar: a line every so often
    counted = encoder if progress else Metered(encoder, meter)

    def embed_model(texts: list[str]) -> np.ndarray:
        return counted.encode(texts, batch_size=batch_size, progress=progress)

    embeds = {"model": unique_embed(embed_model), "tfidf": unique_embed(tfidf_vectors)}
    report: dict[str, Any] = {
        "report": "semsearch evaluate",
        "format_version": REPORT_FORMAT,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "semsearch_version": __version__,
        "model": {
            "name": encoder.name,
            "path": str(encoder.path),
            "fingerprint": encoder.fingerprint,
            "dim": encoder.dim,
            "precision": getattr(encoder, "precision", "fp32"),
            "kind": model_kind(getattr(encoder, "config", None)),
        },
        "limit": limit,
        "thresholds": dict(THRESHOLDS),
        "warnings": contamination_warnings(getattr(encoder, "config", None)),
        "sts": {},
        "separation": {},
        "retrieval": {},
    }

    stsb = {}
    for split in ("test", "dev"):
        stsb[split] = load_stsb(split, data_dir)[:limit]
        log(f"STS-B {split}: {len(stsb[split]):,} pairs")
        report["sts"][f"stsb_{split}"] = {"pairs": len(stsb[split])} | {
            method: sts_scores(embed, stsb[split]) for method, embed in embeds.items()
        }
    report["separation"]["stsb_test"] = {
        method: stsb_separation(embed, stsb["test"]) for method, embed in embeds.items()
    }

    if pairs is not None:
        log(f"hand-written pairs: {len(pairs):,}")
        report["pairs"] = {"file": pairs_file} | pairs_report(embeds, pairs)

    retrieval_sets = [snli_retrieval_set(load_snli("test", data_dir)[:limit])]
    retrieval_sets += [read_beir(folder) for folder in retrieval_dirs]
    for retrieval_set in retrieval_sets:
        if limit is not None:
            retrieval_set = limit_retrieval_set(retrieval_set, limit)
        log(
            f"retrieval {retrieval_set.name}: {len(retrieval_set.qrels):,} queries, "
            f"{len(retrieval_set.corpus):,} documents"
        )
        results = {m: evaluate_retrieval(retrieval_set, e, RETRIEVAL_KS) for m, e in embeds.items()}
        report["retrieval"][retrieval_set.name] = {
            "queries": results["model"]["queries"],
            "corpus": results["model"]["corpus"],
        } | {m: {key: scores[key] for key in RETRIEVAL_METRICS} for m, scores in results.items()}

    if clustering:
        report["clustering"] = clustering_report(embeds, data_dir, limit, log)
    collections = []
    for folder, split in search_sets:
        collection = read_beir(folder, split)
        if limit is not None:
            collection = limit_retrieval_set(collection, limit)
        collections.append(collection)
    if collections:
        report["speed"] = encode_speed(encoder, collections[0], batch_size)
        log(f"encode speed: {report['speed']['texts_per_s']:,.0f} texts/s on "
            f"{report['speed']['texts']:,} {collections[0].name} passages")
        from semsearch.eval.search_eval import evaluate_search

        report["search"], _ = evaluate_search(collections, encoder, batch_size, progress, log)

    meter.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    return clean_floats(report)


def clustering_report(embeds: dict[str, Embed], data_dir, limit: int | None,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """V-measure of k-means on Wikipedia sentences grouped by article (eval/clustering.py), or
    {} with a message when the articles file is not in the data folder."""
    from semsearch.data.sources import resolve_data_dir
    from semsearch.errors import DataError
    from semsearch.eval.clustering import evaluate_clustering, wikipedia_clustering_set

    folder = resolve_data_dir(data_dir)
    articles = 100 if limit is None else max(2, min(100, limit // 20))
    try:
        if folder is None:
            raise DataError("no local data folder")
        cluster_set = wikipedia_clustering_set(folder, articles=articles)
    except DataError as error:
        log(f"clustering skipped: Wikipedia articles not found ({error})")
        return {}
    log(f"clustering {cluster_set.name}: {len(cluster_set.texts):,} sentences of {articles} "
        "articles")
    return {cluster_set.name: evaluate_clustering(cluster_set, embeds)}


SPEED_TEXTS = 2000  # passages timed for the encode speed


def encode_speed(encoder, collection, batch_size: int) -> dict[str, Any]:
    """Texts a second the encoder embeds on the first SPEED_TEXTS passages of `collection`
    (one warm-up batch first, then best of two passes: the machine's noise is one-sided)."""
    texts = list(collection.corpus.values())[:SPEED_TEXTS]
    encoder.encode(texts[:batch_size], batch_size=batch_size)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        encoder.encode(texts, batch_size=batch_size)
        best = min(best, time.perf_counter() - started)
    return {"collection": collection.name, "texts": len(texts),
            "texts_per_s": round(len(texts) / best, 1),
            "backend": getattr(encoder, "backend", "torch")}


def clean_floats(value: Any) -> Any:
    """The report with nan as None and numpy numbers as Python ones, so it is valid JSON."""
    if isinstance(value, dict):
        return {key: clean_floats(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_floats(item) for item in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
