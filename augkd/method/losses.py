"""Every loss of method.md, one function each, on plain tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kl_teacher_student(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(p_T || p_S) per sample (a vector) at ``temperature``."""
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def class_balance(teacher_logits: torch.Tensor) -> torch.Tensor:
    """sum_c pbar_c log pbar_c: the negative entropy of the batch-mean teacher softmax."""
    mean_probs = F.softmax(teacher_logits, dim=1).mean(dim=0)
    return (mean_probs * torch.log(mean_probs.clamp_min(1e-12))).sum()


class BatchNormStatistics:
    """Records, for every BatchNorm layer of a model, how far the batch statistics of its
    inputs are from the stored running statistics (Module 1's beta term)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.terms: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(self._hook) for layer in self.layers]

    def _hook(
        self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor
    ) -> None:
        x = inputs[0].float()  # kept in fp32 under autocast: small differences matter here
        dims = [0, *range(2, x.ndim)]
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        self.terms.append(
            torch.linalg.vector_norm(mean - layer.running_mean)
            + torch.linalg.vector_norm(var - layer.running_var)
        )

    def pop(self) -> torch.Tensor:
        """Sum over layers of the last forward pass, then forget it."""
        total = torch.stack(self.terms).sum() if self.terms else torch.zeros(())
        self.terms = []
        return total

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def generator_loss(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    bn_term: torch.Tensor,
    balance_weight: float,
    bn_weight: float,
) -> torch.Tensor:
    """L_G = -KL(p_T||p_S) + CE(T, argmax T) + alpha * neg-entropy + beta * BN term."""
    adversarial = -kl_teacher_student(teacher_logits, student_logits).mean()
    confident = F.cross_entropy(teacher_logits, teacher_logits.argmax(dim=1))
    return (
        adversarial
        + confident
        + balance_weight * class_balance(teacher_logits)
        + bn_weight * bn_term
    )


def vae_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over dimensions, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def encoder_loss(
    mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, kl_weight: float
) -> torch.Tensor:
    """||E(x~, y) - z||^2 (reparameterised sample) + kl_weight * KL to the prior."""
    z_hat = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    return (z_hat - z).pow(2).sum(dim=1).mean() + kl_weight * vae_kl(mu, logvar)


def energy_score(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """U_tau = -tau * logsumexp(logits / tau) per sample; low means familiar to the teacher."""
    return -temperature * torch.logsumexp(logits / temperature, dim=1)


def mask_budget(mask: torch.Tensor, invariant: float) -> torch.Tensor:
    """|mean_d m - (1 - rho)| per sample, averaged over the batch (reachable, unlike the release)."""
    return (mask.mean(dim=1) - (1 - invariant)).abs().mean()


def anchor_loss(
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    anchor_weight: float,
    temperature: float,
    ce_weight: float,
    mask_weight: float,
    invariant: float,
) -> torch.Tensor:
    """L_A = w_u * U_tau + w_ce * CE(T(G(z_a)), y) + w_m * mask budget."""
    return (
        anchor_weight * energy_score(teacher_logits, temperature).mean()
        + ce_weight * F.cross_entropy(teacher_logits, labels)
        + mask_weight * mask_budget(mask, invariant)
    )


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    ce_share: float | torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """u * CE(S, y) + (1 - u) * tau^2 * KL(softmax(T/tau) || softmax(S/tau)), batch mean.

    ``ce_share`` is one u or one per sample. ``teacher_logits`` may cover only the last
    rows of the batch (the samples whose u < 1); the others must have u = 1."""
    ce = F.cross_entropy(student_logits, labels, reduction="none")
    if teacher_logits is None:
        return ce.mean()
    shares = torch.as_tensor(ce_share, dtype=ce.dtype, device=ce.device).expand_as(ce)
    kd = torch.zeros_like(ce)
    first = len(ce) - len(teacher_logits)
    kd[first:] = kl_teacher_student(teacher_logits, student_logits[first:], temperature)
    return (shares * ce + (1 - shares) * temperature**2 * kd).mean()
