"""The grader's GPU path made visible on the CPU.

CUDA-only failures: torch 2.0's fused attention kernels need q/k/v contiguous in their last
dimension, and a CPU tensor meeting a CUDA tensor only fails on a GPU. Here the attention inputs'
strides are checked directly, and training and sampling steps, figures and reports run with model
and batch on the ``meta`` device, where meeting a CPU tensor raises just as meeting a CUDA one would.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hw2lib.ddim import DDIMSampler
from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier
from hw2lib.dpm_solver import DPMSolverPP2M
from hw2lib.schedule import NoiseSchedule
from p1.losses import diffusion_loss
from p1.model import ConditionalUNet, UNetConfig
from p1.sampling import ClassifierFreeGuidance
from p3.augment import source_view, target_view

META = torch.device("meta")

# ---------------------------------------------------------------- the GPU path, checked on the CPU


def test_attention_inputs_are_contiguous_in_the_last_dimension(monkeypatch):
    seen = []

    def checking_sdpa(q, k, v, *args, **kwargs):
        seen.append([t.stride(-1) for t in (q, k, v)])
        return real(q, k, v, *args, **kwargs)

    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", checking_sdpa)
    model = ConditionalUNet(UNetConfig()).eval()
    with torch.no_grad():
        model(torch.randn(2, 3, 28, 28), torch.tensor([5, 900]), torch.tensor([3, 10]))
    assert seen, "the model no longer calls scaled_dot_product_attention: update this test"
    assert all(strides == [1, 1, 1] for strides in seen), seen


def test_meta_device_catches_a_cpu_tensor_meeting_a_device_tensor():
    """The premise of the tests below: on ``meta``, mixing with a CPU tensor raises (as CUDA does)."""
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.where(torch.zeros(2, dtype=torch.bool), torch.zeros(2, device=META), torch.ones(2, device=META))


def test_p1_training_step_on_meta_device():
    model = ConditionalUNet(UNetConfig()).to(META)
    x0 = torch.empty(4, 3, 28, 28, device=META)
    y = torch.empty(4, dtype=torch.long, device=META)
    loss = diffusion_loss(model, NoiseSchedule(), x0, y, 0.5, torch.Generator().manual_seed(0), model.null_label, 5.0)
    loss.backward()
    assert loss.device == META and all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("sampler_class", [DDIMSampler, DPMSolverPP2M])
def test_p1_sampling_on_meta_device(sampler_class):
    model = ConditionalUNet(UNetConfig()).to(META).eval()
    eps_fn = ClassifierFreeGuidance(
        model, torch.arange(4, device=META), 5.0, NoiseSchedule(), rescale=1.0, interval=(0, 499)
    )
    sampler = sampler_class(NoiseSchedule(), num_inference_steps=3)
    x = sampler.sample(eps_fn, torch.empty(4, 3, 28, 28, device=META))
    assert x.device == META and x.shape == (4, 3, 28, 28)


def test_p3_augmentations_on_meta_device():
    x = torch.empty(6, 3, 28, 28, device=META)
    for view in (source_view, target_view):
        assert view(x, torch.Generator().manual_seed(0)).device == META


@pytest.fixture()
def meta_copies_out(monkeypatch):
    """``.cpu()`` of a meta tensor gives zeros of its shape (meta tensors hold no data to copy out), so
    a whole CLI step can run with its model on ``meta``; every tensor it builds on the way still has to
    be on the model's device, or the ops between them raise as they would on a GPU."""
    real_cpu = torch.Tensor.cpu

    def cpu(self, *args, **kwargs):
        return torch.zeros(self.shape, dtype=self.dtype) if self.is_meta else real_cpu(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)


def test_p1_figures_on_meta_device(meta_copies_out):
    from p1.figures import reverse_process, stage_shapes
    from p1.sampling import SamplingConfig

    model = ConditionalUNet(UNetConfig()).to(META).eval()
    stages = stage_shapes(model)
    assert stages[0][0] == "stem" and stages[-1][2] == (3, 28, 28)
    frames = reverse_process(model, NoiseSchedule(), SamplingConfig(steps=3), torch.zeros(1, 3, 28, 28))
    assert len(frames) == 6


def test_p2_figures_and_gpu_memory_check_on_meta_device(meta_copies_out, monkeypatch):
    from hw2lib import ddim_figures
    from hw2lib.ddim import course_sampler
    from hw2lib.ddim_figures import eta_grid, interpolation, lerp, slerp
    from p2.unet import UNet

    # two DDIM steps instead of 50: every step builds the same tensors, and a meta forward still costs ~0.3 s
    monkeypatch.setattr(ddim_figures, "course_sampler", lambda steps=50, eta=0.0: course_sampler(2, eta))

    with torch.device(META):
        unet = UNet().eval()  # built on meta: no weights allocated
    noises = torch.randn(2, 3, 32, 32)
    rows = eta_grid(unet, noises, META)
    assert len(rows) == 5 and rows[0].shape == (2, 3, 32, 32)
    for how in (slerp, lerp):
        assert interpolation(unet, noises[0], noises[1], how, META).shape == (11, 3, 32, 32)
    import gpu_probe

    _, _, steps = gpu_probe.p2_memory_check(unet, noises, META, steps=2)
    assert steps == 2


def test_p3_report_and_labelling_on_meta_device(meta_copies_out):
    from hw2lib.digit_cnn import penultimate_features, predict_labels

    model = DigitClassifier(ClassifierConfig(grayscale=True, standardize=True, width=8)).to(META).eval()
    images = torch.randint(0, 255, (5, 3, 28, 28), dtype=torch.uint8)
    assert penultimate_features(model, images)[1].shape == (5, 256)
    assert len(predict_labels(model, images)) == 5
