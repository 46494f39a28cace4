"""The shared diffusion core: schedule values, the DDIM timestep grid, determinism, and a diffusers cross-check."""

import numpy as np
import pytest
import torch

from conftest import course_ddim_scheduler
from hw2lib.ddim import DDIMSampler
from hw2lib.schedule import NoiseSchedule


def toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in network whose output depends on both x and t."""
    return 0.3 * torch.tanh(x) + 0.01 * torch.sin(t.float())[:, None, None, None]


def test_schedule_is_linear_float64_and_zero_indexed():
    schedule = NoiseSchedule()
    betas, abar = schedule.betas, schedule.alphas_cumprod
    assert betas.dtype == np.float64 and abar.dtype == np.float64 and len(abar) == 1000
    assert betas[0] == 1e-4 and betas[-1] == 2e-2
    assert abar[0] == pytest.approx(0.9999, abs=1e-15)
    assert abar[999] == pytest.approx(np.prod(1 - np.linspace(1e-4, 2e-2, 1000)), rel=1e-12)
    assert abar[999] == pytest.approx(4.0358e-05, rel=1e-3)


def test_course_timestep_grid_and_predecessors():
    sampler = DDIMSampler(NoiseSchedule(), num_inference_steps=50, steps_offset=1)
    assert sampler.timesteps() == [981 - 20 * i for i in range(50)]
    assert sampler.timesteps()[:3] == [981, 961, 941] and sampler.timesteps()[-1] == 1
    assert sampler.prev_timesteps() == [961 - 20 * i for i in range(49)] + [0]
    assert sorted(sampler.prev_timesteps()) == [0, 1] + list(range(21, 962, 20))


def test_set_alpha_to_one_ends_at_clean_alpha():
    sampler = DDIMSampler(NoiseSchedule(), num_inference_steps=10, steps_offset=0, set_alpha_to_one=True)
    assert sampler.timesteps() == list(range(900, -1, -100))
    assert sampler.prev_timesteps()[-1] == -1
    assert float(sampler._alpha_bar(-1)) == 1.0


def test_bad_settings_rejected():
    with pytest.raises(ValueError):
        DDIMSampler(NoiseSchedule(), num_inference_steps=0)
    with pytest.raises(ValueError):
        DDIMSampler(NoiseSchedule(), num_inference_steps=1000, steps_offset=1)


def test_single_step_matches_ddim_equation():
    schedule = NoiseSchedule()
    sampler = DDIMSampler(schedule, clip_sample=False)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    a_t, a_s = schedule.alphas_cumprod[981], schedule.alphas_cumprod[961]
    x0 = (x.double() - np.sqrt(1 - a_t) * eps.double()) / np.sqrt(a_t)
    expected = np.sqrt(a_s) * x0 + np.sqrt(1 - a_s) * eps.double()
    x_s, x0_pred = sampler.step(eps, x, 981, 961)
    torch.testing.assert_close(x_s.double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(x0_pred.double(), x0, rtol=1e-6, atol=1e-5)  # |x0| ~ 100 here: float32 precision


def test_clip_sample_clamps_x0():
    sampler = DDIMSampler(NoiseSchedule(), clip_sample=True)
    x = torch.full((1, 1, 2, 2), 5.0)
    _, x0_pred = sampler.step(torch.zeros_like(x), x, 981, 961)
    assert x0_pred.max().item() == 1.0


def test_eta_zero_is_bitwise_repeatable():
    sampler = DDIMSampler(NoiseSchedule(), num_inference_steps=20)
    x_T = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    a, b = sampler.sample(toy_eps, x_T.clone()), sampler.sample(toy_eps, x_T.clone())
    assert torch.equal(a, b)


def test_eta_positive_draws_only_from_the_given_generator():
    sampler = DDIMSampler(NoiseSchedule(), num_inference_steps=10, eta=1.0)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = sampler.sample(toy_eps, x_T, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was touched"
    b = sampler.sample(toy_eps, x_T, generator=torch.Generator().manual_seed(7))
    c = sampler.sample(toy_eps, x_T, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match="Generator"):
        sampler.sample(toy_eps, x_T)


def test_callback_sees_every_step():
    seen = []
    DDIMSampler(NoiseSchedule(), num_inference_steps=5).sample(
        toy_eps, torch.zeros(1, 1, 2, 2), callback=lambda t, s, x, x0: seen.append((t, s))
    )
    assert seen == [(801, 601), (601, 401), (401, 201), (201, 1), (1, 0)]


def test_matches_diffusers_ddim_scheduler():
    reference = course_ddim_scheduler()
    assert reference.timesteps.tolist() == DDIMSampler(NoiseSchedule()).timesteps()
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    x = x_T.clone()
    for t in reference.timesteps:
        x = reference.step(toy_eps(x, t.repeat(2)), t, x, eta=0.0).prev_sample
    ours = DDIMSampler(NoiseSchedule()).sample(toy_eps, x_T)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-5)
