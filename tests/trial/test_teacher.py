"""Bring your own teacher: a torchvision state dict with a YAML beside it, and ImageNet
weights from torchvision's local cache for `augkd teacher`."""

from __future__ import annotations

import pytest
import torch
import torchvision
import yaml

from augkd.basics.config import with_overrides
from augkd.basics.errors import ModelError
from augkd.cli import main as augkd_main
from augkd.models import build_classifier
from augkd.trial.pipeline import run_trial
from augkd.trial.teacher import load_teacher

ARCH = "resnet18"  # with torchvision's stem, 16 px images shrink to 4 px: cheap on a CPU
DIGITS = [str(i) for i in range(10)]
META = {
    "arch": ARCH,
    "class_names": DIGITS,
    "image_size": 16,
    "mean": [0.2, 0.2, 0.2],
    "std": [0.3, 0.3, 0.3],
}


def _own_teacher(folder, meta=META, prefix: str = "", grey: bool = False) -> str:
    """Weights as torchvision saves them elsewhere (here: untrained), and their YAML."""
    torch.manual_seed(0)
    state = getattr(torchvision.models, ARCH)(num_classes=10).state_dict()
    if grey:  # a model made for one-channel images
        state["conv1.weight"] = state["conv1.weight"][:, :1]
    weights = folder / "teacher.pth"
    torch.save({prefix + k: v for k, v in state.items()}, weights)
    if meta is not None:
        (folder / "teacher.yaml").write_text(yaml.safe_dump(meta))
    return str(weights)


def test_torchvision_teacher_with_yaml_loads_and_trains_a_student(tiny_config, tmp_path):
    weights = _own_teacher(tmp_path, prefix="module.")  # saved from DataParallel
    config = with_overrides(
        tiny_config,
        {"method": "kd", "teacher.checkpoint": weights, "module3.epochs": 1,
         "data.split": [0.3, 0.1, 0.6]},
    )  # fmt: skip
    teacher = load_teacher(config, torch.device("cpu"))
    assert teacher.class_names == DIGITS and teacher.metadata["arch"] == ARCH
    assert teacher.metadata["small_input"] is False  # torchvision's own stem by default
    result = run_trial(config, log=lambda _line: None)
    assert result.metrics["epoch"] == 1.0 and 0.0 <= result.metrics["test_acc1"] <= 100.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"meta": None}, r"plain state dict, but '.*teacher\.yaml' beside them is missing"),
        ({"meta": {k: v for k, v in META.items() if k != "std"}}, r"lacks the key 'std'"),
        ({"meta": {**META, "colour": 1}}, r"unknown key 'colour'"),
        ({"meta": {**META, "class_names": DIGITS[:9]}}, r"have 10 outputs but 9 class names"),
        ({"meta": {**META, "arch": "resnet34"}}, r"do not fit .*missing keys .*check arch in"),
        ({"grey": True}, r"'conv1\.weight' has shape \[64, 1, 7, 7\] where it expects \[64, 3"),
    ],
)
def test_mismatched_own_teacher_is_refused_in_one_sentence(tiny_config, tmp_path, change, message):
    weights = _own_teacher(tmp_path, **change)
    config = with_overrides(tiny_config, {"teacher.checkpoint": weights})
    with pytest.raises(ModelError, match=message) as caught:
        load_teacher(config, torch.device("cpu"))
    text = str(caught.value)
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text


def _cached_imagenet_weights(torch_home, monkeypatch) -> dict[str, torch.Tensor]:
    """Stands in for weights a user already has: saved into a TORCH_HOME-like cache."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    torch.manual_seed(1)
    state = getattr(torchvision.models, ARCH)().state_dict()
    url = torchvision.models.get_model_weights(ARCH).DEFAULT.url
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / url.rsplit("/", 1)[-1])
    return state


def test_pretrained_weights_come_from_torchvisions_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match=r"not in torchvision's local cache .*hub/checkpoints"):
        build_classifier(ARCH, 10, pretrained=True)
    state = _cached_imagenet_weights(tmp_path / "torch", monkeypatch)
    model = build_classifier(ARCH, 10, pretrained=True, small_input=False)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert model.fc.out_features == 10


@pytest.mark.slow
def test_augkd_teacher_fine_tunes_cached_imagenet_weights(tmp_path, monkeypatch, capsys):
    _cached_imagenet_weights(tmp_path / "torch", monkeypatch)
    out = tmp_path / "teacher.pt"
    code = augkd_main(
        ["teacher", "--set", f"teacher.arch={ARCH}", "--set", "teacher.pretrained=true",
         "--set", "teacher.epochs=1", "--set", "data.image_size=8", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["arch"] == ARCH and checkpoint["state_dict"]["fc.weight"].shape[0] == 10
