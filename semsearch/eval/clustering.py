"""Clustering: do a model's vectors group sentences by topic? (the guide's downstream check)

Sentences of Wikipedia articles are labelled with their article; k-means (k = the number of
articles) runs on the vectors and V-measure (Rosenberg & Hirschberg 2007: the harmonic mean of
homogeneity and completeness, 0..1, 1 = the clusters are the articles exactly) scores the
clusters against the articles. k-means and V-measure are scikit-learn's (the `plot` extra),
seeded; the score is the mean over `runs` seeds, as MTEB's clustering tasks average several.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semsearch.errors import ConfigError


@dataclass(frozen=True)
class ClusteringSet:
    """Texts and the label (article) of each."""

    name: str
    texts: list[str]
    labels: list[int]


def wikipedia_clustering_set(data_dir: Path, articles: int = 100, per_article: int = 20,
                             seed: int = 0) -> ClusteringSet:
    """`per_article` sentences (the first ones of at least 6 words) from each of `articles`
    articles drawn at random (seeded) among those that have that many."""
    from semsearch.data.passages import split_sentences
    from semsearch.data.sources import locate, read_articles

    pool = []
    for article in read_articles(locate("wikititle", "all", data_dir)):
        sentences = [s for p in article.paragraphs for s in split_sentences(p)
                     if len(s.split()) >= 6]
        if len(sentences) >= per_article:
            pool.append(sentences[:per_article])
    if len(pool) < articles:
        raise ConfigError(f"only {len(pool)} articles have {per_article} sentences; ask for fewer")
    chosen = sorted(np.random.default_rng(seed).choice(len(pool), articles, replace=False))
    texts = [s for i in chosen for s in pool[i]]
    labels = [rank for rank in range(articles) for _ in range(per_article)]
    return ClusteringSet("wikipedia_articles", texts, labels)


def v_measure(vectors, labels: Sequence[int], runs: int = 3) -> float:
    """Mean V-measure of k-means (k = distinct labels, seeds 0..runs-1) against `labels`.

    >>> round(v_measure(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]), [0, 0, 1, 1]), 2)
    1.0
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    scores = [v_measure_score(labels, KMeans(n_clusters=k, n_init=1, random_state=seed)
                              .fit_predict(vectors)) for seed in range(runs)]
    return float(np.mean(scores))


def evaluate_clustering(cluster_set: ClusteringSet,
                        embeds: dict[str, Callable[[list[str]], object]]) -> dict:
    """V-measure of each method's vectors ({method: embed}) on `cluster_set`."""
    return {"texts": len(cluster_set.texts), "clusters": len(set(cluster_set.labels))} | {
        method: {"v_measure": v_measure(embed(cluster_set.texts), cluster_set.labels)}
        for method, embed in embeds.items()}
