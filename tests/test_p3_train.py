"""P3 training: the DANN trainer and the SHOT refinement on a trivially separable target, the
self-training losses, test-time BN and the augmentations."""

import math
import shutil
from pathlib import Path

import pytest
import torch
from test_p3 import read_csv

from conftest import make_digit_dataset, run_module
from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier, adapt_batchnorm, predict_labels
from hw2lib.digits import load_split, read_split_csv
from hw2lib.metrics_log import read_metrics
from p3.augment import (
    random_affine,
    random_blur,
    random_cutout,
    random_neighbours,
    random_polarity,
    random_thickness,
    source_view,
    strong_target_view,
    target_view,
)
from p3.pseudo_labels import (
    centroid_labels,
    class_balance_loss,
    confident_labels,
    information_score,
    mean_entropy,
    pseudo_label_loss,
)


def evaluations(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir / "metrics.jsonl", having="val_accuracy")


@pytest.fixture(scope="module")
def bar_digits(tmp_path_factory) -> tuple[Path, Path]:
    """A trivially separable source and target (the label is a bright bar's height; RGB vs grayscale)."""
    root = tmp_path_factory.mktemp("digits")
    return make_digit_dataset(root / "mnistm", n=60, seed=2), make_digit_dataset(root / "usps", n=60, seed=3, mode="L")


@pytest.fixture(scope="module")
def dann_run(bar_digits, tmp_path_factory) -> Path:
    source, target = bar_digits
    out = tmp_path_factory.mktemp("runs") / "dann"
    flags = ("--steps", "60", "--batch-size", "16", "--eval-every", "20", "--width", "8")
    result = run_module("p3.train", "--source", source, "--target", target, "--out-dir", out, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("row", ["source-only", "target-only"])
def test_trainer_learns_a_separable_target_for_the_tables_other_rows(bar_digits, tmp_path, row):
    source, target = bar_digits
    flags = ("--steps", "60", "--batch-size", "16", "--eval-every", "20", "--width", "8", "--domain-weight", "0")
    out = tmp_path / row
    labelled = source if row == "source-only" else target
    result = run_module("p3.train", "--source", labelled, "--target", target, "--out-dir", out, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    evals = evaluations(out)
    assert [e["step"] for e in evals] == [20, 40, 60]
    assert all("domain_acc" not in e for e in evals), "no adversary without a domain loss"
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["val_accuracy"] == max(e["val_accuracy"] for e in evals) >= 0.95
    assert best["target"] == "usps" and best["trainer"] == "p3.train"


@pytest.mark.slow
def test_dann_learns_a_separable_target_and_logs_its_adversary(dann_run):
    evals = evaluations(dann_run)
    assert [e["step"] for e in evals] == [20, 40, 60]
    assert all(0.0 <= e["domain_acc"] <= 1.0 and e["lambda"] > 0 for e in evals)
    assert evals[-1]["val_accuracy"] >= 0.95 and evals[-1]["target_train_accuracy"] >= 0.95
    best = torch.load(dann_run / "best.pt", weights_only=True)
    assert best["val_accuracy"] == max(e["val_accuracy"] for e in evals)


@pytest.mark.slow
def test_refinement_keeps_a_correct_model_correct_with_centroid_labels(bar_digits, dann_run, tmp_path):
    """SHOT's refinement from a model that already labels the target right: its centroid pseudo-labels
    are the true labels, so it must stay right; no source or domain loss is ever logged."""
    _, target = bar_digits
    out = tmp_path / "refine"
    flags = ("--steps", "20", "--batch-size", "16", "--eval-every", "10", "--relabel-every", "10")
    result = run_module("p3.refine", "--init-from", dann_run / "best.pt", "--target", target, "--out-dir", out, *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    last = torch.load(out / "last.pt", weights_only=True)
    _, true_labels = load_split(target, "train")
    assert (last["pseudo_labels"] == true_labels).float().mean() >= 0.95
    evals = evaluations(out)
    assert [e["step"] for e in evals] == [10, 20]
    assert all(e["val_accuracy"] >= 0.95 and "domain_acc" not in e for e in evals)
    assert torch.load(out / "best.pt", weights_only=True)["trainer"] == "p3.refine"


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["p3.train", "p3.refine"])
def test_a_stopped_run_resumes_to_the_straight_runs_weights_log_and_clock(bar_digits, dann_run, tmp_path, trainer):
    """Stopped between evaluations (step 25 of 40) and run again, a run ends with the straight run's
    weights, optimiser and evaluations (dropout's generator and, for SHOT, the pseudo-labels of step 15
    come back from last.pt); its elapsed_s counts both sittings."""
    source, target = bar_digits
    common = ("--target", target, "--steps", "40", "--batch-size", "16", "--eval-every", "20")
    if trainer == "p3.train":
        flags = ("--source", source, "--width", "8", *common)
    else:
        flags = ("--init-from", dann_run / "best.pt", "--relabel-every", "15", *common)
    straight = run_module(trainer, *flags, "--out-dir", tmp_path / "a")
    assert straight.returncode == 0, straight.stderr[-2000:]
    part = run_module(trainer, *flags, "--out-dir", tmp_path / "b", "--stop-after", "25")
    assert part.returncode == 0 and "stopped at step 25 of 40" in part.stdout, part.stderr[-2000:]
    first = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert first["step"] == 25 and first["elapsed_s"] > 0 and set(first["rng"]) == {"cpu", "cuda"}
    rest = run_module(trainer, *flags, "--out-dir", tmp_path / "b")
    assert rest.returncode == 0 and "at step 25" in rest.stdout, rest.stderr[-2000:]
    a, b = (torch.load(tmp_path / run / "last.pt", weights_only=True) for run in "ab")
    assert a["step"] == b["step"] == 40
    for key in ("model", "teacher", "discriminator"):
        for name, tensor in a.get(key, {}).items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resuming"
    momenta = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    assert momenta and all(
        torch.equal(m, s["momentum_buffer"]) for m, s in zip(momenta, b["optimizer"]["state"].values())
    )
    if trainer == "p3.refine":
        assert torch.equal(a["pseudo_labels"], b["pseudo_labels"])

    def scores(run: str) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "elapsed_s"} for e in evaluations(tmp_path / run)]

    assert scores("a") == scores("b") and [e["step"] for e in scores("b")] == [20, 40]
    assert evaluations(tmp_path / "b")[-1]["elapsed_s"] == b["elapsed_s"] >= first["elapsed_s"]  # both sittings


# ---------- test-time BN statistics (hw2_3.sh) and the self-training loss ----------


def shifted_domain_model_and_images():
    """A model whose stored BN statistics describe another domain than the images it is given."""
    torch.manual_seed(4)
    model = DigitClassifier(ClassifierConfig(width=8, feature_dim=16)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.8)  # statistics of a much brighter domain
            m.running_var.fill_(0.05)
    images = torch.randint(0, 256, (300, 3, 28, 28), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    return model, images


def test_test_time_bn_changes_predictions_when_the_domain_shifted():
    model, images = shifted_domain_model_and_images()
    stored = predict_labels(model, images)
    adapted = predict_labels(adapt_batchnorm(model, images), images)
    assert (adapted != stored).float().mean() > 0.1
    assert torch.equal(predict_labels(model, images), stored), "the caller's model must be left as it was"
    matched = adapt_batchnorm(model, images)  # statistics already those of these images: a fixed point
    assert torch.equal(predict_labels(adapt_batchnorm(matched, images), images), predict_labels(matched, images))


def test_confident_labels_keep_only_what_the_teacher_is_sure_of():
    torch.manual_seed(6)
    teacher = DigitClassifier(ClassifierConfig(width=8, feature_dim=16))
    x = torch.rand(16, 3, 28, 28) * 2 - 1
    labels, mask = confident_labels(teacher, x, confidence=0.0)
    assert labels.shape == (16,) and mask.sum() == 16
    student_logits = torch.randn(16, 10, requires_grad=True)
    loss = pseudo_label_loss(student_logits, labels, mask)
    loss.backward()
    assert loss.item() > 0 and student_logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters()), "the teacher is never trained by this loss"
    _, mask = confident_labels(teacher, x, confidence=1.01)
    assert mask.sum() == 0 and pseudo_label_loss(student_logits, labels, mask).item() == 0.0  # nothing trusted


def two_clusters(n: int = 20) -> torch.Tensor:
    """n features near direction e0 (class 0's cluster), then n near e1 (class 1's)."""
    gen = torch.Generator().manual_seed(0)
    f = torch.zeros(2 * n, 8)
    f[:n, 0], f[n:, 1] = 1.0, 1.0
    return f + 0.05 * torch.randn(2 * n, 8, generator=gen)


def test_centroid_labels_fix_a_confidently_wrong_prediction_inside_another_cluster():
    features = two_clusters()
    probs = torch.zeros(40, 10)
    probs[:20, 0], probs[20:, 1] = 0.9, 0.9
    probs[:, 2:] = 0.1 / 8
    probs[3] = 0.0
    probs[3, 1] = 1.0  # image 3 lies among the 0s, but the classifier is sure it is a 1
    labels = centroid_labels(features, probs)
    assert labels[3] == 0, "its cluster outvotes the classifier"
    assert torch.equal(labels, torch.tensor([0] * 20 + [1] * 20))


def test_centroid_labels_leave_predictions_that_agree_with_the_clusters_alone():
    features = two_clusters()
    probs = torch.full((40, 10), 0.01)
    probs[:20, 0], probs[20:, 1] = 0.91, 0.91
    assert torch.equal(centroid_labels(features, probs), probs.argmax(1))


def test_class_balance_pushes_a_collapsed_batch_apart_and_leaves_a_balanced_one_alone():
    collapsed = torch.zeros(10, 10)
    collapsed[:, 3] = 8.0  # every image predicted as 3
    collapsed.requires_grad_(True)
    loss = class_balance_loss(collapsed)
    loss.backward()
    assert loss.item() > 2.0  # close to log 10 = 2.30
    assert collapsed.grad[:, 3].min() > 0, "gradient descent lowers the over-predicted class"
    balanced = (8.0 * torch.eye(10)).requires_grad_(True)  # each image a different class
    loss = class_balance_loss(balanced)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert balanced.grad.abs().max() < 1e-6


def test_mean_entropy_is_zero_for_certain_and_log_k_for_uniform_predictions():
    certain = torch.full((4, 10), -30.0)
    certain[:, 2] = 30.0
    assert mean_entropy(certain).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(4, 10, requires_grad=True)
    loss = mean_entropy(uniform)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(10), abs=1e-6)
    assert uniform.grad.abs().max() < 1e-6  # uniform is a maximum: no preferred direction
    tilted = torch.zeros(1, 10)
    tilted[0, 7] = 1.0
    tilted.requires_grad_(True)
    mean_entropy(tilted).backward()
    assert tilted.grad[0, 7] < 0, "descent raises the leading class: entropy minimisation sharpens"


def test_information_score_prefers_confident_and_diverse_predictions():
    confident_diverse = torch.eye(10) * 0.99 + 0.001
    uncertain = torch.full((10, 10), 0.1)
    collapsed = torch.zeros(10, 10)
    collapsed[:, 0] = 1.0
    assert information_score(confident_diverse) < information_score(uncertain) == pytest.approx(0.0, abs=1e-6)
    assert information_score(confident_diverse) < information_score(collapsed) == pytest.approx(0.0, abs=1e-6)
    assert information_score(confident_diverse) == pytest.approx(-math.log(10), abs=0.1)


def test_information_score_of_a_hand_computed_case():
    # mean entropy (ln 2 + 0) / 2 minus the entropy of the mean prediction (0.75, 0.25)
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    expected = math.log(2) / 2 + (0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert expected == pytest.approx(-0.215762, abs=1e-6)
    assert information_score(probs) == pytest.approx(expected, abs=1e-6)


def test_augmentations_keep_shape_range_and_draw_only_from_the_generator():
    x = torch.rand(8, 3, 28, 28) * 2 - 1
    state = torch.get_rng_state()
    a = source_view(x, torch.Generator().manual_seed(1))
    b = source_view(x, torch.Generator().manual_seed(1))
    c = target_view(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == c.shape == x.shape and not torch.equal(a, x)
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was touched"
    assert torch.equal(random_polarity(x, torch.Generator(), prob=1.0), -x)
    stroke = -torch.ones(1, 1, 28, 28)
    stroke[..., 10:18, 13:15] = 1.0  # a bright bar two pixels wide
    thick = random_thickness(stroke, torch.Generator().manual_seed(0), prob=1.0)
    assert (thick > 0).sum() != (stroke > 0).sum()  # dilated or eroded: the stroke width changed


def test_neighbouring_digits_paste_strokes_beside_the_centre_and_keep_its_polarity():
    """Two bars of opposite polarity: each gets the other's stroke 12 pixels to the side, in its own polarity."""
    x = -torch.ones(2, 3, 28, 28)
    x[0, :, 8:20, 13:15] = 1.0  # light stroke on a dark ground
    x[1] = 1.0
    x[1, :, 8:20, 13:15] = -1.0  # dark stroke on a light ground
    gen = torch.Generator().manual_seed(0)
    out = random_neighbours(x, gen, prob=1.0, offset=(12.0, 12.0))
    assert out.shape == x.shape and torch.equal(out[:, 0], out[:, 1])  # grey, replicated
    centre, left, right = out[0, 0, 14, 13], out[0, 0, 14, 1], out[0, 0, 14, 25]
    background = out[0, 0, 2, 6]
    assert centre > background and left > background and right > background  # light strokes on both sides
    assert out[1, 0, 14, 13] < out[1, 0, 2, 6] and out[1, 0, 14, 25] < out[1, 0, 2, 6]  # dark ones, dark
    plain = random_neighbours(x, torch.Generator().manual_seed(0), prob=0.0)
    assert torch.allclose(plain[0, 0, 14, 1], plain[0, 0, 2, 6])  # probability 0: nothing pasted
    # off (the default) draws nothing more: the view is the four steps it was before neighbours existed
    g = torch.Generator().manual_seed(3)
    before = random_polarity(random_blur(random_affine(random_thickness(x, g), g), g), g)
    assert torch.equal(source_view(x, torch.Generator().manual_seed(3)), before)


def test_cutout_replaces_one_square_by_the_image_mean_and_nothing_else():
    x = torch.arange(2 * 3 * 28 * 28, dtype=torch.float32).view(2, 3, 28, 28) / 1000
    out = random_cutout(x, torch.Generator().manual_seed(0), size=10)
    changed = (out != x).any(1)  # (B, H, W): where the square went
    for i in range(2):
        rows, cols = changed[i].nonzero(as_tuple=True)
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(changed[i].sum()) == h * w and 5 <= h <= 10 and 5 <= w <= 10  # one square, maybe clipped
        mean = x[i].mean((1, 2)).unsqueeze(1)  # (3, 1): each channel's mean
        assert torch.equal(out[i][:, changed[i]], mean.expand(3, h * w))
    assert torch.equal(random_cutout(x, torch.Generator().manual_seed(0), prob=0.0), x)
    state = torch.get_rng_state()
    a = strong_target_view(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, strong_target_view(x, torch.Generator().manual_seed(4))) and a.shape == x.shape
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was touched"


@pytest.mark.slow
def test_refinement_with_the_teachers_consistency_keeps_a_correct_model_correct(bar_digits, dann_run, tmp_path):
    """With --consistency the student also learns the teacher's confident labels on strong views: from a
    model that labels the bar digits right it stays right, and the loss differs from the run without it."""
    _, target = bar_digits
    flags = ("--steps", "10", "--batch-size", "16", "--eval-every", "10", "--relabel-every", "10")
    losses = {}
    for weight in ("0", "1"):
        out = tmp_path / f"consistency{weight}"
        result = run_module(
            "p3.refine", "--init-from", dann_run / "best.pt", "--target", target, "--out-dir", out,
            "--consistency", weight, "--confidence", "0.5", *flags,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        evals = evaluations(out)
        assert [e["step"] for e in evals] == [10] and evals[0]["val_accuracy"] >= 0.95
        losses[weight] = evals[0]["loss"]
    assert losses["1"] != losses["0"]


@pytest.mark.slow
def test_hw2_3_labels_a_separable_target_as_its_trained_model_does(bar_digits, dann_run, tmp_path):
    """A tiny DANN run scored ≥ 95 % on the bar digits' val split: the CSV of those images agrees with
    their labels on exactly that fraction, in name order."""
    _, target = bar_digits
    names, labels = read_split_csv(target, "val")
    folder = tmp_path / "usps" / "test"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(target / "data" / name, folder / name)
    out = tmp_path / "pred.csv"
    result = run_module("p3.predict", folder, out, "--checkpoint", dann_run / "best.pt")
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)[1:]
    assert [r[0] for r in rows] == sorted(names)
    truth = dict(zip(names, labels))
    agreement = sum(int(label) == truth[name] for name, label in rows) / len(rows)
    best = torch.load(dann_run / "best.pt", weights_only=True)["val_accuracy"]
    assert agreement == pytest.approx(best, abs=1e-6) and agreement >= 0.95
