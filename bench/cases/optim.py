"""One optimizer step over ResNet-18's parameters (11.7 M floats in 62 tensors shaped like
torchvision's resnet18), minicnn against PyTorch's `foreach` implementation.

"fwd" is one `optimizer.step()` with the gradients already in `.grad` (there is no backward:
fwd_bwd is None). minicnn's parameters are views into one flat buffer per group, and the step is
one fused parallel Numba kernel over it that reads the 62 gradient arrays in place (a typed list
and a chunk table: no gather copy); PyTorch's foreach path runs a few multi-tensor ops, one pass
over memory each. The correctness gate compares the parameters after the first step of each side,
taken from the same weights with the same gradients. Bytes are the algorithmic minimum of one
step (each of p, g and the state read once, p and the state written once), which is also what
minicnn's kernel moves.
"""
from ..registry import Workload, case


def resnet18_shapes(num_classes=1000):
    """The parameter shapes of torchvision's resnet18, in its order (11,689,512 in total)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            c_in = cin if block == 0 else cout
            shapes += [(cout, c_in, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if block == 0 and (stride != 1 or c_in != cout):
                shapes += [(cout, c_in, 1, 1), (cout,), (cout,)]
        cin = cout
    shapes += [(num_classes, 512), (num_classes,)]
    return shapes


def _setup(ctx, quick_scale):
    import minicnn as mc  # noqa: PLC0415
    shapes = resnet18_shapes()
    if ctx.quick:  # smoke run: the same tensor count, 1/quick_scale of the first dimension
        shapes = [(max(1, s[0] // quick_scale),) + s[1:] for s in shapes]
    params = [ctx.array(s) for s in shapes]
    grads = [ctx.array(s, low=-0.01, high=0.01) for s in shapes]
    mp = [mc.nn.Parameter(ctx.mc(a)) for a in params]
    tp = [ctx.torch.nn.Parameter(ctx.th(a)) for a in params]
    for m, t, g in zip(mp, tp, grads):
        m.grad = ctx.mc(g)
        t.grad = ctx.th(g)
    n = sum(a.size for a in params)
    return mc, mp, tp, n


def _torch_impl(ctx):
    """PyTorch's fastest Adam: fused on the GPU (the issue's reference, 0.38 ms on an H100),
    foreach on the CPU (fused Adam is CUDA-only there)."""
    return {"fused": True} if ctx.device == "cuda" else {"foreach": True}


def _workload(ctx, mc, mp, tp, n, mopt, topt, arrays_rw):
    def mc_step():
        mopt.step()
        return mp

    def torch_step():
        topt.step()
        return tp

    return Workload(mc_fwd=mc_step, torch_fwd=torch_step, bytes=arrays_rw * 4 * n,
                    atol=1e-5, rtol=1e-4,
                    extra={"params_M": round(n / 1e6, 3), "tensors": len(mp)})


@case("optim", "sgd_momentum_resnet18", tags=("cpu", "gpu"),
      description="SGD(lr=0.1, momentum=0.9, weight_decay=5e-4).step() over ResNet-18's "
                  "11.7 M parameters; torch foreach=True")
def sgd_momentum(ctx):
    mc, mp, tp, n = _setup(ctx, 16)
    kw = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
    mopt = mc.optim.SGD(mp, **kw)
    topt = ctx.torch.optim.SGD(tp, foreach=True, **kw)
    # read p, g, buf; write p, buf
    return _workload(ctx, mc, mp, tp, n, mopt, topt, 5)


@case("optim", "adam_resnet18", tags=("cpu", "gpu"),
      description="Adam(lr=1e-3).step() over ResNet-18's 11.7 M parameters; torch fused=True "
                  "on cuda, foreach=True on the CPU")
def adam(ctx):
    mc, mp, tp, n = _setup(ctx, 16)
    mopt = mc.optim.Adam(mp, lr=1e-3)
    topt = ctx.torch.optim.Adam(tp, lr=1e-3, **_torch_impl(ctx))
    # read p, g, m, v; write p, m, v
    return _workload(ctx, mc, mp, tp, n, mopt, topt, 7)


@case("optim", "adamw_resnet18", tags=("cpu", "gpu"),
      description="AdamW(lr=1e-3, weight_decay=1e-2).step() over ResNet-18's 11.7 M "
                  "parameters; torch fused=True on cuda, foreach=True on the CPU")
def adamw(ctx):
    mc, mp, tp, n = _setup(ctx, 16)
    mopt = mc.optim.AdamW(mp, lr=1e-3)
    topt = ctx.torch.optim.AdamW(tp, lr=1e-3, **_torch_impl(ctx))
    return _workload(ctx, mc, mp, tp, n, mopt, topt, 7)
