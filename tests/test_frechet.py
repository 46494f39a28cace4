"""P1's Fréchet distance: the matrix square root, known closed forms, and that it sees lost variety."""

import math

import pytest
import torch

from p1.evaluate import DigitScores, RealData, logit_margin, report_lines
from p1.frechet import FrechetReference, frechet_distance, psd_sqrt, stratified_halves


def test_psd_sqrt_squares_back_and_matches_a_known_root():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    spd = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    root = psd_sqrt(spd)
    torch.testing.assert_close(root @ root, spd)
    torch.testing.assert_close(root, root.T)
    known = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # eigenvalues 3, 1
    expected = torch.tensor([[math.sqrt(3) + 1, math.sqrt(3) - 1], [math.sqrt(3) - 1, math.sqrt(3) + 1]]) / 2
    torch.testing.assert_close(psd_sqrt(known), expected.double())


def gaussian(n: int, mean: list[float], std: list[float], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.tensor(mean) + torch.tensor(std) * torch.randn(n, len(mean), generator=gen)


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    # d² = ‖μa − μb‖² + Σ (σa − σb)² for diagonal covariances
    a = gaussian(200_000, [0.0, 1.0, 0.0], [1.0, 2.0, 0.5], seed=0)
    b = gaussian(200_000, [1.0, 1.0, -1.0], [3.0, 1.0, 0.5], seed=1)
    expected = (1 + 0 + 1) + (2**2 + 1**2 + 0)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_identical_sets_score_zero_and_distance_is_symmetric():
    a = gaussian(500, [0.0] * 4, [1.0] * 4, seed=2)
    b = gaussian(500, [0.5] * 4, [2.0] * 4, seed=3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def real_like(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of 3 classes, each a Gaussian blob around its own centre."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    centres = 3.0 * torch.eye(3, 8)
    return centres[labels] + torch.randn(len(labels), 8, generator=gen), labels


def test_real_digits_score_near_the_floor_and_shifted_or_collapsed_sets_score_worse():
    features, labels = real_like(400, seed=4)
    reference = FrechetReference(features, labels)
    fresh, fresh_labels = real_like(100, seed=5)  # another draw from the same distribution
    good = reference.score(fresh, fresh_labels)
    assert good.overall.distance < 3 * good.overall.floor
    shifted = reference.score(fresh + 1.0, fresh_labels)
    assert shifted.overall.distance > good.overall.distance + 5  # ‖shift‖² = 8
    collapsed = fresh.clone()
    for c in range(3):  # every digit of a class is the same image: no variety left
        collapsed[fresh_labels == c] = fresh[fresh_labels == c][0]
    bad = reference.score(collapsed, fresh_labels)
    assert bad.overall.distance > 3 * good.overall.distance
    assert all(bad.per_class[c].distance > 3 * good.per_class[c].distance for c in range(3))
    assert good.overall.floor == bad.overall.floor  # the floor depends only on the real digits and the counts


def test_stratified_halves_split_every_class_evenly():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 4)
    a, b = stratified_halves(labels)
    assert len(set(a.tolist()) | set(b.tolist())) == 21 and not set(a.tolist()) & set(b.tolist())
    for c, n in ((0, 10), (1, 7), (2, 4)):
        assert (labels[a] == c).sum() == n // 2 and (labels[b] == c).sum() == n - n // 2


def test_real_sample_by_rank_takes_each_class_highest_ranked_with_ties_in_index_order():
    features = torch.arange(12, dtype=torch.float32)[:, None].repeat(1, 2)  # row i's features are (i, i)
    labels = torch.tensor([0, 1] * 6)
    reference = FrechetReference(features, labels)
    half_a = reference.floor_index  # 3 digits of each class
    rank = torch.zeros(len(half_a))
    first0 = (reference.floor_labels == 0).nonzero().squeeze(1)
    rank[first0[2]] = 5.0  # class 0: one clear winner, then a tie between the other two
    picked = reference.real_sample({0: 2, 1: 1}, rank=rank)[:, 0].long()
    first1 = half_a[reference.floor_labels == 1][0]
    assert picked.tolist() == [int(half_a[first0[2]]), int(half_a[first0[0]]), int(first1)]


def test_logit_margin_ranks_digits_whose_softmax_saturated():
    logits = torch.tensor([[30.0, 0.0, 1.0], [25.0, 0.0, 0.0], [2.0, 5.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    probs = logits.softmax(1)
    assert probs[0, 0] == probs[1, 0] == 1.0  # fp32 cannot tell the first two apart
    assert logit_margin(logits, labels).tolist() == [29.0, 25.0, -3.0]
    assert logit_margin(logits, torch.tensor([2, 1, 1])).tolist() == [-29.0, -25.0, 3.0]


def test_references_pick_the_eligible_and_the_surest_digits_and_print_beside_the_floor():
    features, labels = real_like(40, seed=6)
    reference = FrechetReference(features, labels)
    half = reference.floor_labels  # 20 digits of each class
    correct = torch.zeros(len(half), dtype=torch.bool)
    margin = torch.arange(len(half), dtype=torch.float32)  # the later a half-A row, the surer the LeNet
    surest, readable = [], []
    for c in range(3):
        idx = (half == c).nonzero().squeeze(1)
        correct[idx[3:8]] = True  # exactly 5 readable digits per class: the pick has no choice left
        readable.append(idx[3:8])
        surest.append(idx[-5:])
    real = RealData(reference, extractor=None, lenet_correct=correct, lenet_margin=margin)
    refs = real.references({0: 5, 1: 5, 2: 5})
    floor_rows = reference.floor_features
    assert refs["lenet_correct"] == pytest.approx(reference.distance(floor_rows[torch.cat(readable)]), rel=1e-9)
    assert refs["lenet_surest"] == pytest.approx(reference.distance(floor_rows[torch.cat(surest)]), rel=1e-9)
    assert refs["floor"] == pytest.approx(reference.distance(reference.real_sample({0: 5, 1: 5, 2: 5})), rel=1e-9)
    assert len({round(v, 6) for v in refs.values()}) == 3

    fresh, fresh_labels = real_like(5, seed=7)
    scores = DigitScores(0.5, {0: 1.0, 1: 0.5, 2: 0.0}, reference.score(fresh, fresh_labels), refs)
    lines = report_lines(scores, 15)
    assert lines[:2] == ["accuracy 0.5000 on 15 images", "per digit: 0: 1.000  1: 0.500  2: 0.000"]
    assert lines[2].startswith(f"Fréchet distance {scores.frechet.overall.distance:.3f} (reference: 60 MNIST-M")
    assert lines[3:6] == [
        f"  real digits of the same count and mix (the floor): {refs['floor']:.3f}",
        f"  real digits the grader's LeNet reads correctly:    {refs['lenet_correct']:.3f}",
        f"  real digits the grader's LeNet is surest of:       {refs['lenet_surest']:.3f}",
    ]
    assert lines[6].startswith("per digit (floor): 0: ") and len(lines) == 7
