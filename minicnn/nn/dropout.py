"""Dropout layers: identity in eval mode (module.eval()), masks from mc.manual_seed's generator."""
from ..ops import dropout as D
from .module import Module


class _DropoutNd(Module):
    fn = None

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 "
                             f"and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):  # noqa: A002
        return type(self).fn(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    preserves_channels = True
    fn = staticmethod(D.dropout)


class Dropout1d(_DropoutNd):
    fn = staticmethod(D.dropout1d)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of (N, C, H, W) inputs."""
    preserves_channels = True
    fn = staticmethod(D.dropout2d)


class Dropout3d(_DropoutNd):
    fn = staticmethod(D.dropout3d)


class AlphaDropout(_DropoutNd):
    fn = staticmethod(D.alpha_dropout)


class FeatureAlphaDropout(_DropoutNd):
    fn = staticmethod(D.feature_alpha_dropout)
