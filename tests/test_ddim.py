"""The shared diffusion core: schedule values, the DDIM timestep grid, determinism, and a diffusers cross-check."""

import numpy as np
import pytest
import torch

from conftest import course_ddim_scheduler
from hw2lib.ddim import DDIMSampler
from hw2lib.dpm_solver import DPMSolverPP2M
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
    assert sampler.alpha_bar(-1) == 1.0


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


def test_alphas_cumprod_against_an_independent_product():
    """ᾱ from a plain Python loop (no NumPy), and from diffusers' own float32 schedule."""
    abar, product = NoiseSchedule().alphas_cumprod, 1.0
    for t in range(1000):
        product *= 1.0 - (1e-4 + t * (2e-2 - 1e-4) / 999)
        if t in (0, 1, 19, 500, 999):
            assert abar[t] == pytest.approx(product, rel=1e-12), t
    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=2e-2).alphas_cumprod
    np.testing.assert_allclose(abar, theirs.double().numpy(), rtol=2e-5)


def test_schedule_arrays_are_computed_once_and_read_only():
    schedule = NoiseSchedule()
    assert schedule.alphas_cumprod is schedule.alphas_cumprod
    with pytest.raises(ValueError):
        schedule.alphas_cumprod[0] = 1.0


# DPM-Solver++(2M)


def gaussian_data_eps(mean: float, std: float, schedule: NoiseSchedule):
    """The exact ε-prediction for data x0 ~ N(mean, std²) (per pixel), and the exact ODE solution map."""
    table = torch.tensor(schedule.alphas_cumprod, dtype=torch.float64)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = table[t].view(-1, 1, 1, 1).to(x.dtype)
        # x_t ~ N(√a·mean, a·std² + 1 − a); E[ε | x_t] = √(1 − a)·(x_t − √a·mean) / (a·std² + 1 − a)
        return (1 - a).sqrt() * (x - a.sqrt() * mean) / (a * std**2 + 1 - a)

    def ode_solution(x_T: torch.Tensor, t_T: int, a_end: float) -> torch.Tensor:
        # the probability-flow ODE keeps z = (x_t − √a·mean) / √(a·std² + 1 − a) constant
        a_T = float(table[t_T])
        z = (x_T - a_T**0.5 * mean) / (a_T * std**2 + 1 - a_T) ** 0.5
        return a_end**0.5 * mean + (a_end * std**2 + 1 - a_end) ** 0.5 * z

    return eps, ode_solution


def test_dpm_solver_first_order_is_ddim():
    schedule = NoiseSchedule()
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(11))
    ddim = DDIMSampler(schedule, num_inference_steps=10, clip_sample=False).sample(toy_eps, x_T)
    dpm1 = DPMSolverPP2M(schedule, num_inference_steps=10, clip_sample=False, order=1).sample(toy_eps, x_T)
    torch.testing.assert_close(dpm1, ddim, rtol=1e-5, atol=1e-5)
    dpm2 = DPMSolverPP2M(schedule, num_inference_steps=10, clip_sample=False).sample(toy_eps, x_T)
    assert (dpm2 - ddim).abs().max() > 1e-3, "the second-order correction changed nothing"


def test_dpm_solver_is_more_accurate_than_ddim_on_the_exact_ode():
    """On Gaussian data both the network and the ODE's solution are known in closed form."""
    schedule = NoiseSchedule()
    eps, ode_solution = gaussian_data_eps(mean=0.2, std=1.0, schedule=schedule)
    x_T = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    errors = {}
    for name, sampler in {
        "ddim10": DDIMSampler(schedule, num_inference_steps=10, steps_offset=99, clip_sample=False),
        "dpm10": DPMSolverPP2M(schedule, num_inference_steps=10, steps_offset=99, clip_sample=False),
        "ddim20": DDIMSampler(schedule, num_inference_steps=20, steps_offset=49, clip_sample=False),
        "dpm20": DPMSolverPP2M(schedule, num_inference_steps=20, steps_offset=49, clip_sample=False),
    }.items():
        exact = ode_solution(x_T, sampler.timesteps()[0], float(schedule.alphas_cumprod[0]))
        errors[name] = (sampler.sample(eps, x_T) - exact).abs().max().item()
    # measured: ddim10 0.55, dpm10 0.16, ddim20 0.29, dpm20 0.0099 (second order: 2× steps, ~16× less error)
    assert errors["dpm10"] < 0.5 * errors["ddim10"], errors
    assert errors["dpm20"] < 0.1 * errors["ddim20"] and errors["dpm20"] < 0.1 * errors["dpm10"], errors


def test_dpm_solver_is_deterministic_and_ignores_the_global_rng():
    sampler = DPMSolverPP2M(NoiseSchedule(), num_inference_steps=8)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(13))
    state = torch.get_rng_state()
    a, b = sampler.sample(toy_eps, x_T.clone()), sampler.sample(toy_eps, x_T.clone())
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)


def test_dpm_solver_visits_the_ddim_grid_and_reaches_the_clean_end():
    seen = []
    sampler = DPMSolverPP2M(NoiseSchedule(), num_inference_steps=5, steps_offset=0, set_alpha_to_one=True)
    out = sampler.sample(toy_eps, torch.ones(1, 1, 2, 2), callback=lambda t, s, x, x0: seen.append((t, s, x, x0)))
    assert [(t, s) for t, s, _, _ in seen] == [(800, 600), (600, 400), (400, 200), (200, 0), (0, -1)]
    assert torch.equal(out, seen[-1][3]), "at ᾱ = 1 the sample is the last x0 prediction"
