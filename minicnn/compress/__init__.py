"""mc.compress: make a trained CNN small and fast.

- post-training int8 quantization (per-channel symmetric weights, calibrated activations, int8
  GEMM / conv kernels with int32 accumulation): quantize_model, QuantizedConv2d, QuantizedLinear
- quantization-aware training with fake quantization and a straight-through estimator:
  prepare_qat, convert_qat, FakeQuantize
- pruning: magnitude_prune / l1_unstructured / global_unstructured (masks kept during
  fine-tuning), prune_channels (structured, by filter L1 norm, really removes channels)
- batch-norm folding for inference: fold_batchnorm
- reports: model_size_bytes, accuracy, time_forward, compare_models
"""
from ._util import model_size_bytes
from .fold import find_conv_bn_pairs, fold_batchnorm, fold_conv_bn
from .prune import (apply_mask, channel_l1_norms, find_channel_chains, find_channel_groups,
                    global_unstructured,
                    is_pruned, l1_unstructured, magnitude_prune, prune_channels, remove,
                    remove_pruning, sparsity, zero_channels)
from .qat import (FakeQuantize, FakeQuantizeOp, QATConv2d, QATLinear, convert_qat,
                  fake_quantize, fake_quantize_weight, prepare_qat)
from .quantize import (MinMaxObserver, PercentileObserver, QuantizedConv2d, QuantizedLinear,
                       accuracy, calibrate, choose_qparams, compare_models, quantize_model,
                       quantize_weight, time_forward, time_forward_pair)

__all__ = [n for n in dir() if not n.startswith("_")]
