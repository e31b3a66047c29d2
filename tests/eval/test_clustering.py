import numpy as np
import pytest

from semsearch.eval.clustering import evaluate_clustering, v_measure, wikipedia_clustering_set
from semsearch.eval.tfidf import tfidf_vectors


def test_v_measure_separates_good_from_random_vectors():
    rng = np.random.default_rng(0)
    labels = [i for i in range(4) for _ in range(10)]
    centres = rng.normal(size=(4, 8)) * 5
    tight = centres[labels] + rng.normal(size=(40, 8)) * 0.1
    assert v_measure(tight, labels) == pytest.approx(1.0)
    assert v_measure(rng.normal(size=(40, 8)), labels) < 0.5


@pytest.mark.slow
def test_wikipedia_set_and_tfidf_baseline(data_dir):
    cluster_set = wikipedia_clustering_set(data_dir, articles=5, per_article=8)
    again = wikipedia_clustering_set(data_dir, articles=5, per_article=8)
    assert cluster_set == again and len(cluster_set.texts) == 40
    assert cluster_set.labels == [i for i in range(5) for _ in range(8)]
    result = evaluate_clustering(cluster_set, {"tfidf": tfidf_vectors})
    assert result["clusters"] == 5 and 0.0 < result["tfidf"]["v_measure"] <= 1.0


def test_evaluate_reports_clustering(tiny_model_dir, data_dir):
    from click.testing import CliRunner

    from semsearch.cli import main

    result = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_model_dir), "--data-dir",
                                       str(data_dir), "--limit", "40"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Clustering wikipedia_articles (40 sentences, 2 articles" in result.output
