"""mc.optim: optimizers with PyTorch's names, signatures and state-dict layout, updating flat
buffers with fused kernels; mc.optim.lr_scheduler for learning-rate schedules."""
from .algorithms import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RMSprop
from .optimizer import Optimizer
from . import lr_scheduler  # noqa: E402

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax",
           "NAdam", "lr_scheduler"]
