"""P3's mean teacher: it labels without changing, its labels and mask are what the student learns, it
follows the student, and it is what ships (p3/pseudo_labels.py, p3/refine.py)."""

from __future__ import annotations

import argparse
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_digit_dataset
from hw2lib.digit_cnn import (
    ClassifierConfig,
    DigitClassifier,
    adapt_batchnorm,
    batch_statistics,
    batch_statistics_mode,
)
from hw2lib.digits import load_split
from hw2lib.images import uint8_to_signed
from p3.augment import strong_target_view, target_view
from p3.pseudo_labels import confident_labels
from p3.refine import TEACHER_DECAY, Refiner
from p3.refine import main as refine_main
from p3.train import ADAPT_BN_IMAGES
from p3.training import TargetData

BATCH = 16
STEP = 3  # not a multiple of --relabel-every: the step does not relabel


def small_model(seed: int) -> DigitClassifier:
    torch.manual_seed(seed)
    return DigitClassifier(ClassifierConfig(width=8, feature_dim=16))


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def snapshot(model: nn.Module) -> tuple[dict, list, list]:
    """Everything labelling could change: parameters and buffers, every module's mode, the BN flags."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    flags = [m.track_running_stats for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return state, modes, flags


def assert_same_snapshot(a: tuple[dict, list, list], b: tuple[dict, list, list]) -> None:
    assert a[0].keys() == b[0].keys()
    changed = [k for k in a[0] if not torch.equal(a[0][k], b[0][k])]
    assert not changed, f"labelling changed {changed}"
    assert a[1] == b[1], "labelling changed train/eval modes"
    assert a[2] == b[2], "labelling changed track_running_stats"


# ---------- confident_labels: the teacher is left exactly as it was ----------


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_labelling_leaves_the_teacher_exactly_as_it_was_and_labels_as_batch_statistics_mode_does(mode):
    """(e) Parameters, running buffers (num_batches_tracked included), modes and BN flags are unchanged
    after labelling; the labels and mask are bit for bit those of the teacher in batch_statistics_mode
    (each batch's own statistics, no dropout), the way it labelled before it stopped changing."""
    teacher = small_model(0)
    teacher.train(mode == "train")
    x = uint8_to_signed(images(BATCH, 1))
    old = copy.deepcopy(teacher)
    probs = batch_statistics_mode(old)(x)[0].softmax(1)  # the pre-fix labelling, on a copy
    threshold = probs.max(1).values.median().item()
    before = snapshot(teacher)
    labels, mask = confident_labels(teacher, x, threshold)
    assert_same_snapshot(before, snapshot(teacher))
    assert torch.equal(labels, probs.argmax(1))
    assert torch.equal(mask, (probs.max(1).values >= threshold).float())
    assert 0 < mask.sum() < BATCH
    again, mask_again = confident_labels(teacher, x, threshold)  # nothing carried over from the first call
    assert torch.equal(again, labels) and torch.equal(mask_again, mask)


def test_batch_statistics_normalises_each_batch_alone_and_restores_flags_even_on_error():
    model = small_model(2).eval()
    x = uint8_to_signed(images(8, 3))
    with batch_statistics(model):
        assert all(m.training for m in model.modules() if not isinstance(m, nn.Dropout))
        assert not any(m.training for m in model.modules() if isinstance(m, nn.Dropout))
        whole = model(x)[0]
        halves = torch.cat([model(x[:4])[0], model(x[4:])[0]])
    assert not torch.allclose(whole, halves, atol=1e-4), "each batch normalised with its own statistics"
    before = snapshot(model)
    with pytest.raises(RuntimeError), batch_statistics(model):
        raise RuntimeError("inside")
    assert_same_snapshot(before, snapshot(model))


def test_adapt_batchnorm_still_accumulates_statistics_on_its_copy():
    """AdaBN wants batch_statistics_mode's accumulation: its copy's buffers change, the model's do not."""
    model = small_model(4).eval()
    before = snapshot(model)
    adapted = adapt_batchnorm(model, images(64, 5), batch_size=16)
    assert_same_snapshot(before, snapshot(model))
    bn = adapted.features[1]
    assert int(bn.num_batches_tracked) == 4 and not torch.equal(bn.running_mean, model.features[1].running_mean)


class FixedLogits(nn.Module):
    """A stand-in teacher whose logits are given: its softmax is known whatever the images."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.logits[: len(x)], x.flatten(1)


def test_confident_labels_keep_exactly_the_images_at_or_above_an_intermediate_threshold():
    """(f) One class logit a, the other three 0: confidence e^a / (e^a + 3), increasing with a."""
    strength = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
    classes = torch.tensor([3, 1, 0, 2, 1, 3])
    logits = torch.zeros(6, 4)
    logits[torch.arange(6), classes] = strength
    teacher = FixedLogits(logits)
    x = torch.zeros(6, 3, 28, 28)
    conf = logits.softmax(1).max(1).values
    expected_conf = strength.exp() / (strength.exp() + 3)
    assert torch.allclose(conf, expected_conf)
    labels, mask = confident_labels(teacher, x, 0.9)  # e^a ≥ 27 ⇔ a ≥ 3.30: the last two
    assert torch.equal(labels, classes)
    assert mask.tolist() == [0, 0, 0, 0, 1, 1]
    _, mask = confident_labels(teacher, x, conf[3].item())  # exactly image 3's confidence: kept (≥)
    assert mask.tolist() == [0, 0, 0, 1, 1, 1]
    _, mask = confident_labels(teacher, x, 0.5)  # e^a ≥ 3 ⇔ a ≥ 1.10
    assert mask.tolist() == [0, 0, 1, 1, 1, 1] and mask.dtype == torch.float32


# ---------- one refinement step, replayed by hand ----------


def refiner_args(**overrides) -> argparse.Namespace:
    args = dict(
        seed=0,
        steps=100,
        batch_size=BATCH,
        lr=0.005,
        pseudo_weight=0.0,
        balance=0.0,
        entropy=0.0,
        consistency=1.0,
        confidence=0.5,  # replaced by one that splits the step's batch
        relabel_every=1000,
    )
    args.update(overrides)
    return argparse.Namespace(**args)


def step_batch(args: argparse.Namespace, target: TargetData, step: int) -> tuple[torch.Tensor, torch.Generator]:
    """The step's clean target batch and the generator it continues drawing views from (p3/refine.py)."""
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    j = torch.randint(len(target.train_x), (args.batch_size,), generator=gen)
    return uint8_to_signed(target.train_x[j]), gen


def teacher_probs(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's softmax with the batch's statistics and no dropout, computed on a copy."""
    t = copy.deepcopy(teacher).train()
    t.head[0].eval()
    with torch.no_grad():
        return t(x)[0].softmax(1)


@pytest.fixture
def refiner() -> Refiner:
    """A student and a teacher that disagree (the teacher's head is permuted and sharpened), and a
    confidence that trusts exactly half of the teacher's labels of the step's batch."""
    x = images(40, 7)
    target = TargetData(x, torch.zeros(40, dtype=torch.long), x[:8], torch.zeros(8, dtype=torch.long))
    args = refiner_args()
    r = Refiner(args, small_model(8), target, torch.device("cpu"))
    with torch.no_grad():
        head = r.teacher.head[1]
        head.weight.copy_(4.0 * head.weight.roll(1, dims=0))
        head.bias.copy_(head.bias.roll(1))
    r.pseudo = torch.zeros(40, dtype=torch.long)  # unused: its weight is 0
    conf = teacher_probs(r.teacher, step_batch(args, target, STEP)[0]).max(1).values.sort().values
    args.confidence = ((conf[BATCH // 2 - 1] + conf[BATCH // 2]) / 2).item()
    return r


def test_the_consistency_loss_is_the_teachers_masked_labels_on_the_students_strong_views(refiner):
    """(a, b) One step with only the consistency term: the logged loss and the student's gradients are
    those of the cross-entropy of the student's strong views against the *teacher's* labels, with the
    labels it is not sure of masked out, recomputed by hand from copies taken before the step."""
    args, target = refiner.args, refiner.target
    student, teacher = copy.deepcopy(refiner.student), copy.deepcopy(refiner.teacher)
    torch.manual_seed(11)  # dropout draws from the global generator
    logged = refiner(STEP)["loss"]

    torch.manual_seed(11)
    x, gen = step_batch(args, target, STEP)
    student.train()(target_view(x, gen, 0.0))  # the weak view's forward: the same dropout draws
    probs = teacher_probs(teacher, x)
    conf, labels = probs.max(1)
    mask = (conf >= args.confidence).float()
    assert mask.sum() == BATCH // 2, "half of the labels trusted, half not"
    student_labels = teacher_probs(student, x).argmax(1)
    assert (labels != student_labels).float().mean() > 0.5, "the student would label them otherwise"
    strong = student(strong_target_view(x, gen))[0]
    expected = (F.cross_entropy(strong, labels, reduction="none") * mask).mean()
    expected.backward()
    unmasked = F.cross_entropy(strong.detach(), labels).item()
    assert abs(unmasked - expected.item()) > 1e-2, "the mask matters for this batch"
    assert logged == pytest.approx(expected.item(), abs=6e-5)  # the log keeps 4 decimals
    for (name, p), q in zip(refiner.student.named_parameters(), student.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), f"{name}: not the masked teacher-label loss"


def test_the_teacher_follows_the_student_and_keeps_its_buffers(refiner):
    """(c) After a step every teacher parameter is lerp(old teacher, new student, 1 − decay); its
    buffers (running statistics) are untouched, labelling included."""
    old = copy.deepcopy(refiner.teacher)
    refiner(STEP)
    moved = False
    for (name, t), o, s in zip(refiner.teacher.named_parameters(), old.parameters(), refiner.student.parameters()):
        assert torch.equal(t, torch.lerp(o, s, 1.0 - TEACHER_DECAY)), f"{name}: not the EMA of the student"
        moved |= not torch.equal(t, o)
    assert moved, "the teacher moved towards the student"
    for (name, b), o in zip(refiner.teacher.named_buffers(), old.buffers()):
        assert torch.equal(b, o), f"teacher buffer {name} changed"


def test_the_network_that_ships_is_the_teacher_not_the_student(refiner):
    """(d) shipped() is the teacher with BN statistics re-estimated on the target, not the student."""
    refiner(STEP)
    shipped = refiner.shipped()
    assert not shipped.training
    expected = adapt_batchnorm(refiner.teacher, refiner.target.train_x[:ADAPT_BN_IMAGES]).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in shipped.state_dict().items())
    for (name, p), t, s in zip(shipped.named_parameters(), refiner.teacher.parameters(), refiner.student.parameters()):
        assert torch.equal(p, t), f"{name}: not the teacher's"
    assert any(not torch.equal(t, s) for t, s in zip(refiner.teacher.parameters(), refiner.student.parameters()))


@pytest.mark.slow
def test_a_refinement_run_ships_the_adapted_teacher_in_best_pt(tmp_path):
    """(d, end to end) A tiny ``p3.refine`` run with one evaluation (at its last step): best.pt holds
    exactly adapt_batchnorm(last.pt's teacher), which differs from the student's."""
    target = make_digit_dataset(tmp_path / "usps", n=40, seed=3, mode="L")
    init = tmp_path / "init.pt"
    model = small_model(9).eval()
    torch.save({"model": model.state_dict(), "config": model.config.to_dict()}, init)
    out = tmp_path / "refine"
    refine_main(
        ["--init-from", str(init), "--target", str(target), "--out-dir", str(out), "--device", "cpu"]
        + ["--steps", "6", "--eval-every", "6", "--batch-size", "16", "--consistency", "1", "--confidence", "0.2"]
    )
    best = torch.load(out / "best.pt", weights_only=True)
    last = torch.load(out / "last.pt", weights_only=True)
    assert best["step"] == last["step"] == 6
    train_x, _ = load_split(target, "train")

    def adapted(state: dict) -> dict:
        m = DigitClassifier(model.config)
        m.load_state_dict(state)
        return adapt_batchnorm(m, train_x[:ADAPT_BN_IMAGES]).state_dict()

    teacher, student = adapted(last["teacher"]), adapted(last["model"])
    assert all(torch.equal(v, teacher[k]) for k, v in best["model"].items()), "best.pt is not the adapted teacher"
    assert any(not torch.equal(v, student[k]) for k, v in best["model"].items() if "running" not in k)
