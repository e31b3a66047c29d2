import math

import torch

from semsearch.encoder.loss import cosent, cosine_regression, info_nce


def test_matches_hand_computed_case():
    # two orthogonal anchors; positive 0 matches anchor 0, positive 1 sits at 60 degrees
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positives = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    scale = 2.0
    # row 0 logits: [2*1, 2*0.5] -> CE = -log(e^2 / (e^2 + e^1))
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1)))
    # row 1 logits: [2*0, 2*sqrt(3)/2]
    row1 = -math.log(math.exp(math.sqrt(3)) / (1 + math.exp(math.sqrt(3))))
    loss = info_nce(anchors, positives, scale=scale)
    assert abs(loss.item() - (row0 + row1) / 2) < 1e-6


def test_hard_negatives_join_every_anchors_candidates():
    anchors = torch.tensor([[1.0, 0.0]])
    positives = torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    loss = info_nce(anchors, positives, negatives, scale=1.0)
    expected = -math.log(math.e / (math.e + 1 + math.e))
    assert abs(loss.item() - expected) < 1e-6


def test_symmetric_averages_both_directions():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    one_way = info_nce(a, p)
    other_way = info_nce(p, a)
    assert torch.isclose(info_nce(a, p, symmetric=True), (one_way + other_way) / 2)


def test_perfect_pairs_give_low_loss():
    eye = torch.eye(4)
    assert info_nce(eye, eye, scale=20.0).item() < 1e-6


def test_cosent_matches_hand_computed_case():
    cosines = torch.tensor([0.9, 0.2, 0.5])
    scores = torch.tensor([5.0, 1.0, 1.0])  # pair 0 above pairs 1 and 2; 1 and 2 tied
    # ordered couples (i above j): (0, 1), (0, 2) -> exp(2 * (0.2 - 0.9)), exp(2 * (0.5 - 0.9))
    expected = math.log(1 + math.exp(2 * -0.7) + math.exp(2 * -0.4))
    assert abs(cosent(cosines, scores, scale=2.0).item() - expected) < 1e-6


def test_cosent_rewards_the_gold_order_and_ignores_scale():
    scores = torch.tensor([0.0, 2.5, 5.0])
    right = cosent(torch.tensor([0.1, 0.2, 0.3]), scores)
    same_order_other_scale = cosent(torch.tensor([-0.5, 0.4, 0.9]), scores)
    wrong = cosent(torch.tensor([0.3, 0.2, 0.1]), scores)
    assert right < wrong and same_order_other_scale < right
    assert cosent(torch.tensor([0.3, 0.9]), torch.tensor([2.0, 2.0])).item() == 0.0  # all tied


def test_cosine_regression_pulls_cosines_to_the_gold_score_over_five():
    cosines = torch.tensor([0.9, 0.1, 0.5])
    scores = torch.tensor([5.0, 0.0, 4.0])
    expected = ((0.9 - 1.0) ** 2 + 0.1 ** 2 + (0.5 - 0.8) ** 2) / 3
    assert abs(cosine_regression(cosines, scores).item() - expected) < 1e-6
    assert cosine_regression(scores / 5, scores).item() == 0.0
