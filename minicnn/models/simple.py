"""LeNet-5 and the small Conv-Pool-Conv-Pool-Dense network people start with."""
from .. import nn


def _act(name):
    table = {"relu": nn.ReLU, "tanh": nn.Tanh}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; use 'relu' or 'tanh'")
    return table[name]()


class LeNet5(nn.Module):
    """LeCun et al. (1998): conv 5x5 (6) - pool - conv 5x5 (16) - pool - 120 - 84 - classes.

    image_size=32 is the original (no padding). Smaller inputs pad the convolutions with 2 (as
    the usual 28x28 MNIST version does for the first one) so the network fits: 28 -> 5x5x16
    features, 16 -> 4x4x16... 8 (the built-in digits) -> 2x2x16. activation: 'relu' (default)
    or 'tanh' (the original's squashing); pooling is max pooling.
    """

    def __init__(self, num_classes=10, in_channels=1, image_size=32, activation="relu"):
        super().__init__()
        p1 = 0 if image_size >= 32 else 2
        s1 = (image_size + 2 * p1 - 4) // 2
        p2 = 0 if s1 - 4 >= 2 else 2
        s2 = (s1 + 2 * p2 - 4) // 2
        if s2 < 1:
            raise ValueError(f"LeNet5: image_size {image_size} is too small (need >= 4)")
        self.image_size = image_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=p1), _act(activation), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=p2), _act(activation), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * s2 * s2, 120), _act(activation), nn.Linear(120, 84),
            _act(activation), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class SimpleCNN(nn.Module):
    """Conv 3x3 (32) - ReLU - MaxPool - Conv 3x3 (64) - ReLU - MaxPool - Flatten - Dense (128) -
    ReLU - Dropout - Dense (classes). `image_size` sets the flatten size (any size >= 4)."""

    def __init__(self, num_classes=10, in_channels=1, image_size=28, width=32, hidden=128,
                 dropout=0.25, batch_norm=False):
        super().__init__()
        s = image_size // 2 // 2
        if s < 1:
            raise ValueError(f"SimpleCNN: image_size {image_size} is too small (need >= 4)")

        def block(cin, cout):
            layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return layers + [nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(in_channels, width), *block(width, 2 * width))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * s * s, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def lenet5(num_classes=10, in_channels=1, image_size=32, **kwargs):
    return LeNet5(num_classes, in_channels, image_size, **kwargs)


def simple_cnn(num_classes=10, in_channels=1, image_size=28, **kwargs):
    return SimpleCNN(num_classes, in_channels, image_size, **kwargs)
