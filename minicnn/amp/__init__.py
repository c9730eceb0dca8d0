"""Mixed precision as PyTorch's torch.amp: `autocast` (a region in which convolutions, linear
layers and matmuls run in float16 / bfloat16 and the precision-sensitive ops in float32) and
`GradScaler` (loss scaling for float16 gradients, with skipped steps on inf / NaN)."""
from .autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "get_autocast_dtype", "is_autocast_enabled"]
