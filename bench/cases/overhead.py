"""Per-op overhead: `a * b + c` on 10-element tensors with graph recording (issue 2).

Forward records two ops (mul, add); forward+backward adds `.sum().backward()`, so it runs three
forward ops and their three backward nodes. The interesting figure is microseconds per call and
the ratio to PyTorch (aim: within 2x); FLOPs and bytes are left out on purpose (meaningless here).
"""
from ..registry import Workload, case


@case("overhead", "mul_add_10", tags=("cpu", "gpu"),
      description="a * b + c on 10-element float32 tensors, requires_grad; fwd and .sum().backward()")
def mul_add_10(ctx):
    a, b, c = (ctx.array((10,)) for _ in range(3))
    ma, mb, mcc = (ctx.mc(x, requires_grad=True) for x in (a, b, c))
    ta, tb, tc = (ctx.th(x, requires_grad=True) for x in (a, b, c))

    def mc_fwd():
        return ma * mb + mcc

    def torch_fwd():
        return ta * tb + tc

    def mc_fwd_bwd():
        (ma * mb + mcc).sum().backward()
        return ctx.mc_grads(ma, mb, mcc)

    def torch_fwd_bwd():
        (ta * tb + tc).sum().backward()
        return ctx.th_grads(ta, tb, tc)

    return Workload(mc_fwd=mc_fwd, torch_fwd=torch_fwd,
                    mc_fwd_bwd=mc_fwd_bwd, torch_fwd_bwd=torch_fwd_bwd,
                    atol=1e-6, rtol=1e-5, extra={"ops_fwd": 2, "ops_fwd_bwd": 3})
