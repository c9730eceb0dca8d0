"""mc.models: every model trains a few batches on each device; ResNet/VGG/DenseNet match
torchvision's parameter names, shapes and (for ResNet) outputs."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.models import get_model, list_models
from minicnn.train import Trainer

# small settings of every model, so a few batches run in seconds on 2 cores
SMALL = {
    "lenet5": (dict(num_classes=10, in_channels=1, image_size=8), (1, 8, 8)),
    "simple_cnn": (dict(num_classes=10, in_channels=1, image_size=8), (1, 8, 8)),
    "vgg11": (dict(num_classes=5, small_input=True, width_mult=1 / 16, dropout=0.1), (3, 32, 32)),
    "vgg11_bn": (dict(num_classes=5, small_input=True, width_mult=1 / 16), (3, 32, 32)),
    "vgg16_bn": (dict(num_classes=5, small_input=True, width_mult=1 / 16), (3, 32, 32)),
    "resnet18": (dict(num_classes=5, width=4), (3, 32, 32)),
    "resnet18_cifar": (dict(num_classes=5, width=4), (3, 12, 12)),
    "resnet50": (dict(num_classes=5, width=4), (3, 32, 32)),
    "densenet_small": (dict(num_classes=5, growth_rate=4, block_config=(2, 2),
                            num_init_features=8), (3, 12, 12)),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_model_trains_a_few_batches(name, device):
    kwargs, shape = SMALL[name]
    mc.manual_seed(0)
    model = get_model(name, **kwargs)
    n_classes = kwargs["num_classes"]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, *shape)).astype(np.float32)
    y = rng.integers(0, n_classes, 12)
    t = Trainer(model, mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), device=device)
    h = t.fit((x, y), epochs=1, batch_size=4, verbose=0, steps_per_epoch=2)
    assert np.isfinite(h["loss"][0])
    out = t.predict(x[:3])
    assert out.shape == (3, n_classes) and np.isfinite(out).all()


def test_unknown_model_name_lists_models():
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        get_model("resnet19")
    assert {"lenet5", "simple_cnn", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50",
            "densenet_small"} <= set(list_models())


def test_lenet5_sizes():
    for size, flat in [(32, 400), (28, 400), (16, 64), (8, 64)]:
        m = mc.models.lenet5(image_size=size)
        assert m.classifier[1].in_features == flat
        assert m(mc.randn(2, 1, size, size)).shape == (2, 10)
    # the original LeNet-5 (32x32, no padding) has 61,706 parameters
    assert mc.models.lenet5(image_size=32).num_parameters() == 61706


# --- torchvision compatibility --------------------------------------------------------------------

# published parameter counts of torchvision's models (torchvision.models docs)
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "densenet121": 7_978_856}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_match_torchvision(name):
    assert get_model(name).num_parameters() == TORCHVISION_PARAMS[name]


def test_resnet18_state_dict_keys_match_torchvision():
    sd = mc.models.resnet18().state_dict()
    keys = list(sd)
    # torchvision's resnet18 state dict: 122 entries (102 in the blocks)
    assert len(keys) == 122
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "bn1.num_batches_tracked"]
    assert "layer2.0.downsample.0.weight" in keys and "layer2.0.downsample.1.running_var" in keys
    assert "layer1.0.downsample.0.weight" not in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert sd["layer3.1.conv2.weight"].shape == (256, 256, 3, 3)
    assert sd["layer4.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert sd["fc.weight"].shape == (1000, 512)
    r50 = mc.models.resnet50().state_dict()
    assert len(r50) == 320 and r50["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert r50["layer4.2.bn3.running_mean"].shape == (2048,) and r50["fc.weight"].shape == \
        (1000, 2048)


def _torch_resnet(torch, block_kind, layers, num_classes, width, cifar):
    """torchvision's ResNet, written out here (no torchvision in this environment)."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            idt = x if self.downsample is None else self.downsample(x)
            return self.relu(out + idt)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            idt = x if self.downsample is None else self.downsample(x)
            return self.relu(out + idt)

    block = BasicBlock if block_kind == "basic" else Bottleneck

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = width
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False) if cifar else \
                nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make(width, layers[0], 1)
            self.layer2 = self._make(width * 2, layers[1], 2)
            self.layer3 = self._make(width * 4, layers[2], 2)
            self.layer4 = self._make(width * 8, layers[3], 2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

        def _make(self, planes, blocks, stride):
            down = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                out = planes * block.expansion
                down = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride, bias=False),
                                     nn.BatchNorm2d(out))
            mods = [block(self.inplanes, planes, stride, down)]
            self.inplanes = planes * block.expansion
            mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*mods)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


@pytest.mark.parametrize("kind,layers,width,cifar,side", [
    ("basic", [2, 2, 2, 2], 64, False, 32),       # resnet18 at full width
    ("basic", [2, 2, 2, 2], 8, True, 16),         # the CIFAR variant
    ("bottleneck", [3, 4, 6, 3], 4, False, 32),   # resnet50's structure, narrow
])
def test_torchvision_state_dict_loads_and_gives_same_outputs(kind, layers, width, cifar, side):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = _torch_resnet(torch, kind, layers, 7, width, cifar)
    with torch.no_grad():                          # non-trivial running statistics
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    ref.eval()
    block = mc.models.BasicBlock if kind == "basic" else mc.models.Bottleneck
    ours = mc.models.ResNet(block, layers, 7, cifar=cifar, width=width)
    theirs = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert list(theirs) == list(ours.state_dict())
    ours.load_state_dict(theirs)
    ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, side, side)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    with mc.no_grad():
        got = ours(mc.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_vgg_and_densenet_names_follow_torchvision():
    v = mc.models.vgg11_bn(num_classes=10, small_input=True, width_mult=1 / 16).state_dict()
    # torchvision vgg11_bn: features.0 conv, features.1 bn, features.4 the next conv, ...
    assert "features.0.weight" in v and "features.1.running_var" in v and "features.4.weight" in v
    assert "classifier.0.weight" in v and "classifier.6.bias" in v
    plain = mc.models.vgg16(width_mult=1 / 16, small_input=True).state_dict()
    conv_idx = sorted({int(k.split(".")[1]) for k in plain if k.startswith("features.")})
    assert conv_idx == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]     # torchvision's vgg16
    d = mc.models.densenet121().state_dict()
    for key in ["features.conv0.weight", "features.norm0.running_mean",
                "features.denseblock1.denselayer1.norm1.weight",
                "features.denseblock1.denselayer1.conv2.weight",
                "features.transition1.conv.weight",
                "features.denseblock4.denselayer16.conv2.weight",
                "features.norm5.bias", "classifier.weight"]:
        assert key in d, key
    assert d["features.denseblock4.denselayer16.conv2.weight"].shape == (32, 128, 3, 3)
    assert d["classifier.weight"].shape == (1000, 1024)
