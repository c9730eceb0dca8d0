"""nn.Flatten and nn.Unflatten."""
from ..ops.shape import flatten, reshape
from ..ops.util import normalize_axis
from .module import Module


class Flatten(Module):
    """Flattens dims start_dim..end_dim (default: everything but the batch dim)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):  # noqa: A002
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expands dim `dim` into `unflattened_size` (one entry may be -1)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input):  # noqa: A002
        d = normalize_axis(self.dim, input.ndim, "Unflatten")
        shape = tuple(input.shape)
        sizes = self.unflattened_size
        known = 1
        for s in sizes:
            known *= s if s != -1 else 1
        if (-1 not in sizes and known != shape[d]) or (-1 in sizes and shape[d] % known):
            raise ValueError(f"Unflatten: unflattened_size {sizes} does not match dim {self.dim} "
                             f"of size {shape[d]} (input {list(shape)})")
        return reshape(input, shape[:d] + sizes + shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
