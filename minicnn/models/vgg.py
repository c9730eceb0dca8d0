"""VGG-11 / VGG-16, with and without batch norm, in torchvision's layout (features.<i>,
avgpool, classifier.<i>), so torchvision's state dicts load.

small_input=True replaces the 7x7 average pool and the 4096-wide classifier by a 1x1 pool and a
512-wide one (the usual CIFAR version); the features keep their names.
"""
from .. import nn

CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False, in_channels=3, width_mult=1.0):
    layers = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        v = max(1, int(round(v * width_mult)))
        layers.append(nn.Conv2d(c, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        c = v
    return nn.Sequential(*layers), c


class VGG(nn.Module):
    def __init__(self, cfg, num_classes=1000, batch_norm=False, in_channels=3, small_input=False,
                 dropout=0.5, width_mult=1.0):
        super().__init__()
        self.features, c = make_layers(CFGS[cfg], batch_norm, in_channels, width_mult)
        if small_input:
            hidden = c
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            flat = c
        else:
            hidden = 4096
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            flat = c * 7 * 7
        self.classifier = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x)


def vgg11(num_classes=1000, batch_norm=False, **kwargs):
    return VGG("A", num_classes, batch_norm, **kwargs)


def vgg11_bn(num_classes=1000, **kwargs):
    return VGG("A", num_classes, True, **kwargs)


def vgg16(num_classes=1000, batch_norm=False, **kwargs):
    return VGG("D", num_classes, batch_norm, **kwargs)


def vgg16_bn(num_classes=1000, **kwargs):
    return VGG("D", num_classes, True, **kwargs)
