"""InfoNCE / multiple-negatives ranking loss, as a pure function of embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    scale: float = 20.0,
    symmetric: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of picking each anchor's own positive among all candidates.

    anchors, positives: (B, D) L2-normalised; row i of each is a pair. negatives: (M, D) hard
    negatives that join the candidates of every anchor (M may be 0 or differ from B). `scale` is
    1/temperature: cosine in [-1, 1] times 20 gives logits sharp enough to learn from. The
    symmetric variant adds the loss of picking each positive's anchor among the anchors.
    """
    candidates = positives if negatives is None or len(negatives) == 0 else torch.cat(
        [positives, negatives]
    )
    labels = torch.arange(len(anchors), device=anchors.device)
    loss = F.cross_entropy(scale * anchors @ candidates.T, labels)  # (B, B + M) logits
    if symmetric:
        loss = (loss + F.cross_entropy(scale * positives @ anchors.T, labels)) / 2
    return loss


def cosine_regression(cosines: torch.Tensor, scores: torch.Tensor, max_score: float = 5.0
                      ) -> torch.Tensor:
    """Mean squared error between each pair's cosine and its gold score mapped onto [0, 1]
    (sentence-transformers' CosineSimilarityLoss). Unlike CoSENT it fixes where cosines sit,
    not only their order: unrelated pairs (gold 0) are pulled to 0, equivalent ones (gold 5) to
    1, so a cosine threshold keeps its meaning."""
    return torch.mean((cosines - scores / max_score) ** 2)


def cosent(cosines: torch.Tensor, scores: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022): a ranking loss over graded pairs, log(1 + sum exp(scale * (cos_j - cos_i)))
    over every two pairs where gold says i is more similar than j (scores_i > scores_j).

    cosines, scores: (N,) one per sentence pair. It asks only that cosines be ordered like the
    gold scores — what Spearman measures — not that they match the scores' scale. Zero pairs
    with different scores give a loss of log(1) = 0.
    """
    gap = scale * (cosines[None, :] - cosines[:, None])  # gap[i, j] = scale * (cos_j - cos_i)
    wrong_way = gap[scores[:, None] > scores[None, :]]
    return torch.logsumexp(torch.cat([gap.new_zeros(1), wrong_way]), dim=0)
