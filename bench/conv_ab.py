"""Issue 17's conv algorithms, before and after, in one process: whole training steps (and
inference) of ResNet-18 CIFAR and LeNet-5 with the CPU's convolutions as they were (im2col_gemm
for every pass, the input gradient as GEMM + col2im) and as they are (winograd for 3x3 stride 1,
the stride-1 input gradient as a forward conv of gy), in interleaved rounds, medians.

    python -m bench.conv_ab [--threads 2] [--rounds 7] [--only resnet_b32 lenet_b64 ...]

One process, so both variants see the same machine minute by minute; who goes first alternates.
The 1-minute load average before and after is printed: on a shared 2-core machine two-thread
timings are dominated by waiting for a descheduled thread (a two-thread BLAS product measured
2-7x slower than one thread at load 2 here), so compare runs only at equal load, and prefer a
quiet machine. Also printed: the BLAS kernel threadpoolctl reports and OPENBLAS_CORETYPE.
"""
import argparse
import os
import time

CASES = {  # name: (model, batch, what)
    "resnet_b32": ("resnet18_cifar", 32, "train"),
    "resnet_b8": ("resnet18_cifar", 8, "train"),
    "lenet_b64": ("lenet5", 64, "train"),
    "resnet_infer_b32": ("resnet18_cifar", 32, "infer"),
}


def variants():
    """{name: function that sets it}: 'before' and 'after' (see the module docstring)."""
    from minicnn.kernels import conv as kc  # noqa: PLC0415
    as_conv, channels = kc._grad_input_as_conv, kc.WINOGRAD_MIN_CHANNELS

    def before():
        kc.WINOGRAD_MIN_CHANNELS = 1 << 62
        kc._grad_input_as_conv = lambda *a: False

    def after():
        kc.WINOGRAD_MIN_CHANNELS = channels
        kc._grad_input_as_conv = as_conv
    return {"before": before, "after": after}


def make_step(model_name, n, what):
    import numpy as np  # noqa: PLC0415

    import minicnn as mc  # noqa: PLC0415
    import minicnn.functional as F  # noqa: PLC0415
    rng = np.random.default_rng(0)
    if model_name == "lenet5":
        model = mc.models.LeNet5(10, image_size=28)
        x = mc.tensor(rng.uniform(-1, 1, (n, 1, 28, 28)).astype(np.float32))
    else:
        model = mc.models.resnet18_cifar(10, width=64)
        x = mc.tensor(rng.uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32))
    y = mc.tensor(rng.integers(0, 10, n))
    if what == "infer":
        model.eval()

        def infer():
            with mc.no_grad():
                model(x)
        return infer
    opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def measure(name, rounds, budget=0.2):
    """{variant: [seconds per call]}: one timing per variant per round (`number` calls, enough
    for `budget` seconds, divided by `number`)."""
    import numpy as np  # noqa: PLC0415
    model_name, n, what = CASES[name]
    step = make_step(model_name, n, what)
    var = variants()
    for set_variant in var.values():           # warm-up: Numba compiles, workspaces grow
        set_variant()
        step()
        step()
    t = time.perf_counter()
    step()
    number = max(1, int(budget / max(time.perf_counter() - t, 1e-6)))
    times = {k: [] for k in var}
    names = list(var)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            var[k]()
            t = time.perf_counter()
            for _ in range(number):
                step()
            times[k].append((time.perf_counter() - t) / number)
    var["after"]()
    return {k: (float(np.median(v)), float(np.percentile(v, 25)), float(np.percentile(v, 75)))
            for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--only", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = p.parse_args(argv)
    import minicnn as mc  # noqa: PLC0415
    mc.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
        blas = [f"{i.get('internal_api')} {i.get('architecture')} {i.get('num_threads')}"
                for i in threadpool_info()]
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"threads {args.threads}; BLAS {blas}; OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE')}, OPENBLAS_L2_SIZE "
          f"{os.environ.get('OPENBLAS_L2_SIZE')}")
    for name in args.only:
        load = os.getloadavg()[0]
        res = measure(name, args.rounds)
        base = res["before"][0]
        print(f"{name}: {args.rounds} rounds, load {load:.2f} -> {os.getloadavg()[0]:.2f}")
        for k, (med, q1, q3) in res.items():
            print(f"  {k:7s} {med * 1e3:9.2f} ms (q1 {q1 * 1e3:.2f}, q3 {q3 * 1e3:.2f})  "
                  f"{med / base:.3f}x")


if __name__ == "__main__":
    main()
