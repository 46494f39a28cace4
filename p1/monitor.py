"""What ``p1.train`` measures while it trains, and how it picks the checkpoint it keeps.

Accuracy by the grader's LeNet alone rewards collapse: strong guidance draws every digit as its
class's most typical shape and scores ~100 %. So each evaluation draws the same digits twice, with
the model alone (s = 1) and with the shipped guidance, and scores each setting by

* the grader's LeNet accuracy, and
* the Fréchet distance to real MNIST-M val in our own classifier's features (``p1/frechet.py``),
  as a multiple of its floor (the distance real digits of the same count reach).

The kept checkpoint (``best.pt``) maximises, averaged over both settings,

    score = accuracy − 0.01 · (distance / floor)

i.e. one floor-multiple of distance costs as much as one point of accuracy: a checkpoint cannot
win by collapsing (distance grows) nor by drawing varied scribbles (accuracy falls).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hw2lib.images import signed_to_uint8
from hw2lib.schedule import NoiseSchedule

from .classifier import load_lenet
from .evaluate import load_real, score_digits
from .model import ConditionalUNet
from .sampling import SamplingConfig, class_labels, generate, initial_noise

EVAL_NOISE_SEED = 1234  # the evaluation's digits start from the same noise at every step


@dataclass
class SettingScore:
    accuracy: float
    distance: float
    floor: float

    @property
    def score(self) -> float:
        return self.accuracy - 0.01 * self.distance / self.floor


class Monitor:
    """Draws ``per_class`` digits of each class at s = 1 and at ``config``'s guidance and scores both."""

    def __init__(self, classifier_path: str | Path, mnistm_root: str | Path, config: SamplingConfig, per_class: int):
        self.lenet = load_lenet(classifier_path)
        self.real = load_real(mnistm_root, self.lenet)
        self.config, self.per_class = config, per_class

    def settings(self) -> dict[str, SamplingConfig]:
        return {"s1": replace(self.config, guidance=1.0), "shipped": self.config}

    def score_setting(self, ema: ConditionalUNet, schedule: NoiseSchedule, config: SamplingConfig) -> SettingScore:
        labels = class_labels(self.per_class)
        x = generate(ema, schedule, labels, initial_noise(len(labels), EVAL_NOISE_SEED), config)
        scores = score_digits(signed_to_uint8(x).permute(0, 3, 1, 2), labels, self.lenet, self.real)
        return SettingScore(scores.accuracy, scores.frechet.overall.distance, scores.frechet.overall.floor)

    def evaluate(self, ema: ConditionalUNet, schedule: NoiseSchedule) -> tuple[float, dict]:
        """(selection score, metrics record) of the EMA model."""
        scores = {name: self.score_setting(ema, schedule, c) for name, c in self.settings().items()}
        record = {}
        for name, s in scores.items():
            record |= {
                f"eval_{name}_accuracy": round(s.accuracy, 4),
                f"eval_{name}_frechet": round(s.distance, 3),
                f"eval_{name}_floor": round(s.floor, 3),
            }
        selection = sum(s.score for s in scores.values()) / len(scores)
        return selection, record | {
            "eval_score": round(selection, 5),
            "eval_shipped_setting": self.config.guidance_label(),
        }
