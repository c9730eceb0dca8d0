"""DenseNet (Huang et al., 2017) in torchvision's layout (features.conv0/norm0/relu0/pool0,
features.denseblock<i>.denselayer<j>.norm1/conv1/norm2/conv2, features.transition<i>,
features.norm5, classifier), with a small CIFAR-sized default: `densenet_small`."""
from .. import nn
from ..ops import concatenate


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else None

    def forward(self, features):
        x = concatenate(features, 1) if isinstance(features, list) else features
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        return self.drop(out) if self.drop is not None else out


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            _DenseLayer(num_input_features + i * growth_rate, growth_rate,
                                        bn_size, drop_rate))

    def forward(self, x):
        features = [x]
        for _, layer in self.items():
            features.append(layer(features))
        return concatenate(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, stride=2))


class DenseNet(nn.Module):
    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0.0, num_classes=1000, in_channels=3, cifar=False):
        super().__init__()
        self.features = nn.Sequential()
        if cifar:
            self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, 3,
                                                        padding=1, bias=False))
        else:
            self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, 7,
                                                        stride=2, padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        if not cifar:
            self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))
        c = num_init_features
        for i, n in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     _DenseBlock(n, c, bn_size, growth_rate, drop_rate))
            c += n * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        out = self.relu(self.features(x))
        return self.classifier(self.avgpool(out).flatten(1))


def densenet_small(num_classes=10, in_channels=3, growth_rate=12, block_config=(4, 4, 4),
                   num_init_features=24, **kwargs):
    """A small DenseNet for 32x32 inputs: 3x3 stem, three dense blocks of 4 layers (growth 12)."""
    return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes,
                    in_channels=in_channels, cifar=kwargs.pop("cifar", True), **kwargs)


def densenet121(num_classes=1000, **kwargs):
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, **kwargs)
