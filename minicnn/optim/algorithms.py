"""SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax and NAdam with PyTorch's signatures,
defaults and update formulas (torch/optim/*.py, the single-tensor path); each step is one fused
kernel per flat bucket (kernels/optim/)."""
import numpy

from minicnn.dtypes import get_default_dtype
from minicnn.kernels import optim as K

from .optimizer import Optimizer


def _check(cond, message):
    if not cond:
        raise ValueError(message)


def _check_common(group):
    lr = group["lr"]
    _check(0.0 <= lr, f"Invalid learning rate: {lr}")
    if "eps" in group:
        _check(0.0 <= group["eps"], f"Invalid epsilon value: {group['eps']}")
    _check(0.0 <= group["weight_decay"], f"Invalid weight_decay value: {group['weight_decay']}")
    if "betas" in group:
        b1, b2 = group["betas"]
        _check(0.0 <= b1 < 1.0, f"Invalid beta parameter at index 0: {b1}")
        _check(0.0 <= b2 < 1.0, f"Invalid beta parameter at index 1: {b2}")


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (PyTorch's formulation: buf = mu buf + (1 - d) g,
    first buf = g), Nesterov, L2 weight decay, maximize."""

    _has_step = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)
        _check(0.0 <= group["momentum"], f"Invalid momentum value: {group['momentum']}")
        if group["nesterov"]:
            _check(group["momentum"] > 0 and group["dampening"] == 0,
                   "Nesterov momentum requires a momentum and zero dampening")

    def _state_spec(self, group):
        return [("momentum_buffer", 0.0)] if group["momentum"] != 0 else []

    def _apply(self, group, p, g, st, t, sc):
        K.sgd_step(p, g, st.get("momentum_buffer"), group["lr"], group["momentum"],
                   group["dampening"], group["weight_decay"], group["nesterov"],
                   group["maximize"], t == 1)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay, AMSGrad, maximize, and decoupled weight decay
    (decoupled_weight_decay=True is AdamW)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)

    def _state_spec(self, group):
        spec = [("exp_avg", 0.0), ("exp_avg_sq", 0.0)]
        return spec + [("max_exp_avg_sq", 0.0)] if group["amsgrad"] else spec

    def _apply(self, group, p, g, st, t, sc):
        beta1, beta2 = group["betas"]
        bc1 = 1 - beta1 ** t
        bc2 = 1 - beta2 ** t
        K.adam_step(p, g, st["exp_avg"], st["exp_avg_sq"], st.get("max_exp_avg_sq"), group["lr"],
                    beta1, beta2, group["eps"], group["weight_decay"],
                    group["decoupled_weight_decay"], group["amsgrad"], group["maximize"],
                    group["lr"] / bc1, bc2 ** 0.5)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * wd before the Adam
    update; weight_decay defaults to 1e-2."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """RMSprop with smoothing constant alpha, momentum, centered variant, L2 weight decay."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)
        _check(0.0 <= group["momentum"], f"Invalid momentum value: {group['momentum']}")
        _check(0.0 <= group["alpha"], f"Invalid alpha value: {group['alpha']}")

    def _state_spec(self, group):
        spec = [("square_avg", 0.0)]
        if group["momentum"] > 0:
            spec.append(("momentum_buffer", 0.0))
        if group["centered"]:
            spec.append(("grad_avg", 0.0))
        return spec

    def _apply(self, group, p, g, st, t, sc):
        K.rmsprop_step(p, g, st["square_avg"], st.get("grad_avg"), st.get("momentum_buffer"),
                       group["lr"], group["alpha"], group["eps"], group["weight_decay"],
                       group["momentum"], group["centered"], group["maximize"])


class Adagrad(Optimizer):
    """Adagrad with lr decay, L2 weight decay and an initial accumulator value (state exists
    from construction, as in PyTorch)."""

    _eager_state = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)
        _check(0.0 <= group["lr_decay"], f"Invalid lr_decay value: {group['lr_decay']}")
        _check(0.0 <= group["initial_accumulator_value"],
               f"Invalid initial_accumulator_value value: {group['initial_accumulator_value']}")

    def _state_spec(self, group):
        return [("sum", float(group["initial_accumulator_value"]))]

    def _apply(self, group, p, g, st, t, sc):
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        K.adagrad_step(p, g, st["sum"], clr, group["eps"], group["weight_decay"],
                       group["maximize"])


class Adadelta(Optimizer):
    """Adadelta (Zeiler) with coefficient rho, L2 weight decay."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)
        _check(0.0 <= group["rho"] <= 1.0, f"Invalid rho value: {group['rho']}")

    def _state_spec(self, group):
        return [("square_avg", 0.0), ("acc_delta", 0.0)]

    def _apply(self, group, p, g, st, t, sc):
        K.adadelta_step(p, g, st["square_avg"], st["acc_delta"], group["lr"], group["rho"],
                        group["eps"], group["weight_decay"], group["maximize"])


class Adamax(Optimizer):
    """Adamax (the infinity-norm variant of Adam), L2 weight decay."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)

    def _state_spec(self, group):
        return [("exp_avg", 0.0), ("exp_inf", 0.0)]

    def _apply(self, group, p, g, st, t, sc):
        beta1, beta2 = group["betas"]
        K.adamax_step(p, g, st["exp_avg"], st["exp_inf"], beta1, beta2, group["eps"],
                      group["weight_decay"], group["maximize"], group["lr"] / (1 - beta1 ** t))


class NAdam(Optimizer):
    """NAdam (Dozat): Adam with Nesterov momentum and a momentum-decay schedule; L2 or decoupled
    weight decay."""

    _scalar_spec = {"mu_product": 1.0}

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach)
        super().__init__(params, defaults)

    def _validate(self, group):
        _check_common(group)
        _check(0.0 <= group["momentum_decay"],
               f"Invalid momentum_decay value: {group['momentum_decay']}")

    def _state_spec(self, group):
        return [("exp_avg", 0.0), ("exp_avg_sq", 0.0)]

    def _apply(self, group, p, g, st, t, sc):
        beta1, beta2 = group["betas"]
        lr, md = group["lr"], group["momentum_decay"]
        bc2 = 1 - beta2 ** t
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (t * md)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * md)))
        # PyTorch keeps mu_product in a tensor of its scalar dtype (float32 unless the default
        # dtype is float64), whatever the parameters' dtype: round it the same way
        scalar = numpy.dtype(numpy.float64) if get_default_dtype() == numpy.float64 \
            else numpy.dtype(numpy.float32)
        mu_product = float(scalar.type(sc["mu_product"]) * scalar.type(mu))
        mu_product_next = mu_product * mu_next
        K.nadam_step(p, g, st["exp_avg"], st["exp_avg_sq"], lr, beta1, beta2, group["eps"],
                     group["weight_decay"], group["decoupled_weight_decay"], group["maximize"],
                     bc2, -lr * (1.0 - mu) / (1.0 - mu_product),
                     (-lr * mu_next) / (1.0 - mu_product_next))
        return {"mu_product": mu_product}


__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam"]
