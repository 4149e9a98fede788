"""Every loss on a small case computed by hand."""

import math

import torch
from torch import nn

from augkd.method import losses


def test_kl_teacher_student_matches_hand_computation():
    teacher = torch.log(torch.tensor([[0.5, 0.5]]))
    student = torch.log(torch.tensor([[0.25, 0.75]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert torch.allclose(losses.kl_teacher_student(teacher, student), torch.tensor([expected]))


def test_class_balance_is_negative_entropy_of_mean_prediction():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9]]))  # mean (0.5, 0.5)
    assert torch.allclose(losses.class_balance(logits), torch.tensor(math.log(0.5)))


def test_energy_score_is_minus_tau_logsumexp():
    logits = torch.tensor([[1.0, 2.0]])
    tau = 2.0
    expected = -tau * math.log(math.exp(0.5) + math.exp(1.0))
    assert torch.allclose(losses.energy_score(logits, tau), torch.tensor([expected]))


def test_mask_budget_is_per_sample_then_averaged():
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # rho = 0.25 -> target mean 0.75; per-sample |0.5-0.75| and |1-0.75| -> mean 0.25
    assert torch.allclose(losses.mask_budget(mask, 0.25), torch.tensor(0.25))


def test_vae_kl_is_zero_for_the_prior_and_hand_value_otherwise():
    assert torch.allclose(losses.vae_kl(torch.zeros(1, 3), torch.zeros(1, 3)), torch.tensor(0.0))
    mu, logvar = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    assert torch.allclose(losses.vae_kl(mu, logvar), torch.tensor(0.5))


def test_encoder_loss_is_squared_error_plus_weighted_kl():
    mu = torch.tensor([[1.0, 2.0]])
    logvar = torch.full((1, 2), -30.0)  # sigma ~ 0: the sample equals mu
    z = torch.tensor([[0.0, 0.0]])
    kl = losses.vae_kl(mu, logvar)
    value = losses.encoder_loss(mu, logvar.clamp(-30), z, kl_weight=0.1)
    assert torch.allclose(value, 5.0 + 0.1 * kl, atol=1e-4)


def test_distillation_loss_mixes_ce_and_scaled_kl():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[0.0, math.log(3.0) * 10]])  # softmax(T/10) = (0.25, 0.75)
    labels = torch.tensor([0])
    ce = math.log(2.0)
    kd = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    value = losses.distillation_loss(student, teacher, labels, ce_share=0.5, temperature=10.0)
    assert torch.allclose(value, torch.tensor(0.5 * ce + 0.5 * 100 * kd), atol=1e-5)
    only_ce = losses.distillation_loss(student, None, labels, ce_share=1.0, temperature=10.0)
    assert torch.allclose(only_ce, torch.tensor(ce))


def test_generator_loss_sums_its_four_terms():
    teacher = torch.log(torch.tensor([[0.5, 0.5]]))
    student = torch.log(torch.tensor([[0.25, 0.75]]))
    kl = 0.5 * math.log(2.0) + 0.5 * math.log(0.5 / 0.75)
    ce = math.log(2.0)  # argmax ties -> class 0, p = 0.5
    balance = math.log(0.5)
    value = losses.generator_loss(teacher, student, torch.tensor(0.3), 20.0, 1.0)
    assert torch.allclose(value, torch.tensor(-kl + ce + 20 * balance + 0.3), atol=1e-5)


def test_anchor_loss_weights_its_three_terms():
    logits = torch.tensor([[0.0, 0.0]])
    labels = torch.tensor([1])
    mask = torch.full((1, 4), 0.5)
    energy = -1.0 * math.log(2.0)
    ce = math.log(2.0)
    budget = abs(0.5 - 0.75)
    value = losses.anchor_loss(logits, labels, mask, 2.0, 1.0, 0.1, 3.0, 0.25)
    assert torch.allclose(value, torch.tensor(2 * energy + 0.1 * ce + 3 * budget), atol=1e-6)


def test_batchnorm_statistics_measure_distance_to_running_stats():
    bn = nn.BatchNorm1d(2).eval()  # running mean 0, var 1
    stats = losses.BatchNormStatistics(bn)
    x = torch.tensor([[1.0, 3.0], [3.0, 5.0]])  # mean (2, 4), biased var (1, 1)
    bn(x)
    expected = math.sqrt(2**2 + 4**2) + 0.0
    assert torch.allclose(stats.pop(), torch.tensor(expected))
    stats.remove()
