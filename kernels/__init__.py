"""Hand-written kernels (installed as minicnn.kernels): Numba on the CPU, CUDA C on the GPU.

Ops call `minicnn.kernels.<name>(...)`; each name dispatches on the array type to the Numba
kernel (kernels/cpu/) or the CUDA kernel (kernels/cuda/, loaded with cupy.RawModule), and has a
plain NumPy reference in kernels/reference/ that the tests compare against. One module per
kernel family: kernels/<family>.py holds the dispatchers of that family.
"""

if __name__ != "minicnn.kernels":
    # Imported as a top-level `kernels` (a script run from the repo root), the Numba cache would
    # record that module name and later break `minicnn.kernels` in every other process.
    raise ImportError("kernels/ is installed as minicnn.kernels; import it under that name")

from .quant import (dequantize, im2col_int8, qgemm_nt, quantize_per_channel,  # noqa: E402,F401
                    quantize_per_tensor)
from .conv import (col2im, depthwise_conv2d, depthwise_grad_input,  # noqa: E402,F401
                   depthwise_grad_weight, im2col)
from .conv import workspace as conv_workspace  # noqa: E402,F401
from .pool import (adaptive_max_pool2d_fwd, avg_pool2d_bwd, avg_pool2d_fwd,  # noqa: E402,F401
                   max_pool2d_fwd, plane_assign, plane_gather, plane_scatter)
from .norm import (ce_bwd, ce_fwd, chan_affine, chan_bwd_apply, chan_bwd_sums,  # noqa: E402,F401
                   chan_stats, gelu_aux, gelu_bwd, gelu_fwd, relu_bwd, relu_fwd, row_norm_bwd,
                   row_norm_fwd, sigmoid, silu_bwd, silu_fwd)
