"""Half precision beside float32: a 3x3 convolution and a GEMM in float16 and bfloat16 (both sides
in the same dtype), and the ResNet-18 CIFAR training step under each side's autocast (issue 19).

On the GPU these are speed cases: half GEMMs reach the tensor cores. On the CPU both frameworks
compute half in float32 (minicnn widens, runs its float32 kernels and rounds once; NumPy has no
fast half GEMM), so the CPU figure that matters is memory: `extra` gives the bytes the autograd
graph keeps for the backward (saved activations, walked from the output) in float32 and in the
half dtype, and the harness's tracemalloc peak is minicnn's for one call.

Gates. Same-dtype ops: minicnn accumulates in float32 and rounds once, so its output and both
gradients are checked against float64 results from the same half inputs: within eps |ref| (one
rounding of the format) plus float32's accumulation bound K u sum|terms|. PyTorch is not the
reference for these: its float16 CPU convolution backward accumulates in part in float16 (measured
here: the input gradient 1258 ulp off at (4, 64, 56, 56)); `extra` reports PyTorch's worst error
in ulp of the format for the output and the two gradients. The autocast step uses model.py's gate (each side's error from a
float64 reference, minicnn's at most GATE times PyTorch's plus FLOOR).
"""
from ..registry import Workload, case
from .model import _train_step

_EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def saved_bytes(out):
    """Bytes of the distinct arrays the graph behind `out` keeps for the backward."""
    from minicnn.autograd.version import _storage  # noqa: PLC0415 -- the end of the .base chain
    seen, total, stack, visited = set(), 0, [out.creator], set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in visited:
            continue
        visited.add(id(fn))
        for array, _ in fn._saved_arrays():
            base = _storage(array)
            if id(base) not in seen:
                seen.add(id(base))
                total += base.nbytes
        stack.extend(t.creator for t in fn.inputs or () if t is not None)
    return total


def _same_dtype(ctx, dtype, shape_x, shape_w, op, flops):
    """A case running `op` (conv2d or matmul) on both sides in `dtype`, forward and backward,
    gated against float64 (see the module docstring)."""
    import numpy as np  # noqa: PLC0415

    import minicnn as mc  # noqa: PLC0415
    torch = ctx.torch
    xa, wa = ctx.array(shape_x), ctx.array(shape_w)
    mdt, tdt = getattr(mc, dtype), getattr(torch, dtype)
    mx = ctx.mc(xa).to(mdt).requires_grad_()
    mw = ctx.mc(wa).to(mdt).requires_grad_()
    tx = ctx.th(xa).to(tdt).requires_grad_()
    tw = ctx.th(wa).to(tdt).requires_grad_()
    mop = mc.nn.functional.conv2d if op == "conv2d" else mc.matmul
    top = torch.nn.functional.conv2d if op == "conv2d" else torch.matmul
    kw = {"padding": 1} if op == "conv2d" else {}
    eps = _EPS[dtype]

    def mc_fwd_bwd():
        mop(mx, mw, **kw).float().sum().backward()
        return [g.float() for g in ctx.mc_grads(mx, mw)]

    def torch_fwd_bwd():
        top(tx, tw, **kw).float().sum().backward()
        return [g.float() for g in ctx.th_grads(tx, tw)]

    def results(side):
        """[y, gx, gw] of one side as float64 NumPy arrays."""
        if side == "mc":
            y = mop(mx, mw, **kw).float()
            return [mc.devices.to_numpy(a.array).astype(np.float64)
                    for a in [y] + mc_fwd_bwd()]
        y = top(tx, tw, **kw).float()
        return [a.detach().cpu().double().numpy() for a in [y] + torch_fwd_bwd()]

    def reference():
        """The float64 results from the same half inputs, and the float32 accumulation bound of
        each: K u sum|terms| (u = 2^-24), the terms' magnitudes from the same op on |x|, |w|."""
        out = []
        for absolute in (False, True):
            x = tx.detach().cpu().double().abs() if absolute else tx.detach().cpu().double()
            w = tw.detach().cpu().double().abs() if absolute else tw.detach().cpu().double()
            x.requires_grad_()
            w.requires_grad_()
            y = top(x, w, **kw)
            y.sum().backward()
            out.append([a.detach().numpy() for a in (y, x.grad, w.grad)])
        (ref, mag), terms = out, max(shape_w[1:]) * int(np.prod(shape_w[2:]))
        return ref, [terms * 2.0 ** -24 * m for m in mag]

    def check():
        """minicnn within one rounding of the format (eps |ref|) plus float32's accumulation
        bound of the float64 result, for the output and both gradients. PyTorch is not the
        reference here: its float16 CPU backward is ~10^3 ulp off (measured: conv's input
        gradient at (4, 64, 56, 56), 1258 ulp; bfloat16 0.5 ulp)."""
        ref, acc = reference()
        names = ("output", "input gradient", "weight gradient")
        for name, m, t, r, a in zip(names, results("mc"), results("torch"), ref, acc):
            excess = np.abs(m - r) / (eps * np.abs(r) + a + 1e-300)
            if not excess.max() <= 1.0:
                i = int(np.argmax(excess))
                return (f"{op} {dtype} {name}: minicnn {m.flat[i]:.6g}, float64 {r.flat[i]:.6g} "
                        f"(PyTorch {t.flat[i]:.6g}): {excess.flat[i]:.2f}x the bound")
        return None

    def torch_ulps():
        ref, _ = reference()
        return [round(float((np.abs(t - r) / (eps * np.abs(r) + 1e-300)).max()), 1)
                for t, r in zip(results("torch"), ref)]

    out = mop(mx, mw, **kw)
    return Workload(
        mc_fwd=lambda: mop(mx, mw, **kw).float(), torch_fwd=lambda: top(tx, tw, **kw).float(),
        mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=torch_fwd_bwd,
        flops=flops, flops_fwd_bwd=3 * flops, check=check,
        extra={"dtype": dtype, "saved_MB_float32": round(saved_bytes(
            mop(mx.float(), mw.float(), **kw)) / 2 ** 20, 2),
            "saved_MB_half": round(saved_bytes(out) / 2 ** 20, 2),
            "torch_err_ulp_y_gx_gw": torch_ulps()})


def _conv(ctx, dtype):
    n = ctx.by_device(cpu=4, gpu=64, quick=1)
    return _same_dtype(ctx, dtype, (n, 64, 56, 56), (64, 64, 3, 3), "conv2d",
                       2 * n * 64 * 56 * 56 * 64 * 9)


def _gemm(ctx, dtype):
    m = ctx.by_device(cpu=512, gpu=4096, quick=64)
    return _same_dtype(ctx, dtype, (m, m), (m, m), "matmul", 2 * m ** 3)


def _autocast_step(ctx, dtype):
    import minicnn as mc  # noqa: PLC0415
    n = ctx.by_device(cpu=8, gpu=128, quick=2)
    width = 16 if ctx.quick else 64
    work = _train_step(ctx, "resnet18_cifar", n, width, autocast=dtype)
    model = mc.models.resnet18_cifar(10, width=width).to(ctx.device)
    x = ctx.mc(ctx.array((n, 3, 32, 32)))
    fp32 = saved_bytes(model(x))
    with mc.autocast(ctx.device, dtype=getattr(mc, dtype)):
        half = saved_bytes(model(x))
    work.extra.update({"autocast": dtype, "saved_MB_float32": round(fp32 / 2 ** 20, 1),
                       "saved_MB_autocast": round(half / 2 ** 20, 1)})
    return work


for _dtype in ("bfloat16", "float16"):
    case("half", f"conv3x3_{_dtype}", tags=("cpu", "gpu"), shape="N,64,56,56 k3 s1 p1",
         description=f"conv2d with input and weight in {_dtype} on both sides")(
        lambda ctx, d=_dtype: _conv(ctx, d))
    case("half", f"gemm_{_dtype}", tags=("cpu", "gpu"), shape="M x M @ M x M",
         description=f"a square matmul in {_dtype} on both sides")(
        lambda ctx, d=_dtype: _gemm(ctx, d))
    case("half", f"resnet18_cifar_autocast_{_dtype}_step", tags=("cpu", "gpu"),
         description=f"ResNet-18 CIFAR training step with the forward under autocast({_dtype}) "
                     "on both sides (mc.autocast / torch.autocast), batch 8 on CPU, 128 on GPU")(
        lambda ctx, d=_dtype: _autocast_step(ctx, d))
