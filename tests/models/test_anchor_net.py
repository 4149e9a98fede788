import torch

from augkd.models import AnchorNet, Encoder, Generator, build_classifier
from augkd.models.encoder import LOGVAR_RANGE


def test_anchor_leaves_masked_out_dimensions_unchanged():
    torch.manual_seed(0)
    anchor_net = AnchorNet(latent_size=8, num_classes=3).eval()
    linear = anchor_net.mask_net[1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([1e4, -1e4] * 4))  # mask 1,0,1,0,...
    z = torch.randn(5, 8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    anchor, mask = anchor_net(z, labels)
    kept = mask[0] == 0
    assert kept.sum() == 4
    assert torch.equal(anchor[:, kept], z[:, kept])
    assert not torch.allclose(anchor[:, ~kept], z[:, ~kept])


def test_generator_output_is_an_image_in_unit_range():
    images = Generator(latent_size=16, image_size=16, width=8)(torch.randn(4, 16))
    assert images.shape == (4, 3, 16, 16)
    assert images.min() >= 0 and images.max() <= 1


def test_encoder_clamps_log_variance():
    encoder = Encoder(latent_size=6, image_size=16, num_classes=10)
    with torch.no_grad():
        encoder.logvar.bias.fill_(100.0)
    mu, logvar = encoder(torch.rand(3, 3, 16, 16), torch.tensor([1, 2, 3]))
    assert mu.shape == (3, 6)
    assert logvar.max() <= LOGVAR_RANGE[1]


def test_torchvision_classifier_adapts_to_small_inputs():
    model = build_classifier("resnet18", 5, small_input=True).eval()
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    assert model.conv1.stride == (1, 1)
