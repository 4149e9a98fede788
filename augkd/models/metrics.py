"""Top-k accuracy, the metrics the method selects and reports on, and the mean
cross-entropy beside them: finer than accuracy, it still orders students that all reach
the same Acc@1 (a search whose objective saturates at 100)."""

from __future__ import annotations

import torch
from torch import nn

TOP_K = (1, 3, 5)


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, normalize, batch_size: int = 512
) -> torch.Tensor:
    was_training = model.training
    model.eval()
    from augkd.data import as_unit_float

    logits = torch.cat(
        [
            model(normalize(as_unit_float(x[i : i + batch_size])))
            for i in range(0, len(x), batch_size)
        ]
    )
    model.train(was_training)
    return logits


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Acc@1/3/5 in percent (k capped at the number of classes)."""
    num_classes = logits.shape[1]
    ranked = logits.topk(min(max(TOP_K), num_classes), dim=1).indices
    hits = ranked == labels[:, None]
    return {
        f"acc{k}": 100.0 * hits[:, : min(k, num_classes)].any(1).float().mean().item()
        for k in TOP_K
    }


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalize) -> dict[str, float]:
    """Acc@1/3/5 in percent and ``loss``, the mean cross-entropy against the labels."""
    logits = predict_logits(model, x, normalize)
    loss = nn.functional.cross_entropy(logits.float(), y.to(logits.device)).item()
    return {**topk_accuracy(logits, y), "loss": loss}
