"""One helper saves and restores the training state of Modules 1-3: networks, optimisers,
schedulers, loss scaler and every random stream, so a resumed stage goes on exactly."""

from __future__ import annotations

import torch

from augkd.hardware.precision import MixedPrecision
from augkd.method.training_state import TrainingState


def _step(net, optimizer, scheduler, rng) -> torch.Tensor:
    noise = torch.randn(4, 3, generator=rng) + torch.randn(4, 3)  # a named and the global stream
    loss = net(noise).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.detach()


def test_a_restored_snapshot_continues_exactly_like_the_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10)
    rng = torch.Generator().manual_seed(1)
    state = TrainingState(
        {"net": net, "optimizer": optimizer, "scheduler": scheduler,
         "grad_scaler": MixedPrecision("fp32", torch.device("cpu"))},
        {"batches": rng},
    )  # fmt: skip
    _step(net, optimizer, scheduler, rng)
    torch.save(state.capture(epoch=1, best={"loss": 0.5}), tmp_path / "state.pt")
    uninterrupted = [_step(net, optimizer, scheduler, rng) for _ in range(3)]

    for _ in range(2):  # wander off, then come back
        _step(net, optimizer, scheduler, rng)
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    state.restore(saved)
    assert saved["epoch"] == 1 and saved["best"] == {"loss": 0.5}
    resumed = [_step(net, optimizer, scheduler, rng) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed, strict=True))


def test_a_snapshot_is_a_copy_on_the_cpu_not_a_view_of_live_weights():
    net = torch.nn.Linear(3, 2)
    snapshot = TrainingState({"net": net}).capture()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(snapshot["stateful"]["net"]["weight"], net.weight)
    assert snapshot["stateful"]["net"]["weight"].device.type == "cpu"
    assert snapshot["cuda_rng"] is None  # only a GPU stage saves CUDA's stream
