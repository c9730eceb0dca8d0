"""The model steps of bench/cases/model.py with each framework alone in its own fresh process,
under its own defaults (`python -m bench.alone`, from the repository root).

The main harness times minicnn and PyTorch in one process, and so has to give both OpenMP pools
one wait policy: `import minicnn` sets OMP_WAIT_POLICY=PASSIVE, which PyTorch's pool then gets
too and which slows it (its LeNet-5 step at batch 64, 2 threads: 5.4 ms by default, 8.5 ms
passive), while a spinning PyTorch pool in the same process slows minicnn's kernels several
times over. Here neither side sees the other: each case runs in a process of its own, the
frameworks alternate round by round, and the medians and their ratio are written to
bench/results/alone-<time>.md with the load and the OpenBLAS kernel in use.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from .report import blas_now

CASES = {   # name: (model, batch, train)
    "resnet18_cifar_train_b32": ("resnet18", 32, True),
    "resnet18_cifar_train_b8": ("resnet18", 8, True),
    "lenet5_train_b64": ("lenet5", 64, True),
    "resnet18_cifar_inference_b32": ("resnet18", 32, False),
}


def _time_one(side, case, threads, steps):
    """Run in the child: the median seconds of one step of `case` on `side`."""
    model_name, n, train = CASES[case]
    if side == "torch":
        import torch  # noqa: PLC0415
        from bench.cases.model import _torch_lenet5, _torch_resnet18_cifar  # noqa: PLC0415
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        lib, F, grad_off = torch, torch.nn.functional, torch.no_grad
        model = _torch_lenet5(torch, 10) if model_name == "lenet5" else \
            _torch_resnet18_cifar(torch, 10, 64)
    else:
        import minicnn as mc  # noqa: PLC0415
        mc.set_num_threads(threads)
        mc.manual_seed(0)
        lib, F, grad_off = mc, mc.nn.functional, mc.no_grad
        model = mc.models.LeNet5(10, image_size=28) if model_name == "lenet5" else \
            mc.models.resnet18_cifar(10, width=64)
    shape = (n, 1, 28, 28) if model_name == "lenet5" else (n, 3, 32, 32)
    x, y = lib.randn(*shape), lib.randint(0, 10, (n,))
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train(train)

    def step():
        if train:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        else:
            with grad_off():
                model(x)
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.alone", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    p.add_argument("--child", nargs=3, metavar=("SIDE", "CASE", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        side, case, steps = args.child
        print(json.dumps(_time_one(side, case, args.threads, int(steps))))
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {case: {"minicnn": [], "torch": []} for case in args.only}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for case in args.only:
            for side in (("minicnn", "torch") if r % 2 == 0 else ("torch", "minicnn")):
                steps = "40" if CASES[case][0] == "lenet5" else "8"
                out = subprocess.run([sys.executable, "-m", "bench.alone", "--threads",
                                      str(args.threads), "--child", side, case, steps],
                                     cwd=root, capture_output=True, text=True, check=True)
                results[case][side].append(json.loads(out.stdout.strip().splitlines()[-1]))
        load.append(os.getloadavg()[0])
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    lines = [f"# Each framework alone in its own process ({stamp})", "",
             f"threads {args.threads}, rounds {args.rounds} (alternating order), 1-min load "
             f"per round {', '.join(f'{v:.2f}' for v in load)}", blas_now(), "",
             "| case | minicnn (median of round medians) | PyTorch | ratio |", "|---|---|---|---|"]
    for case, sides in results.items():
        m, t = statistics.median(sides["minicnn"]), statistics.median(sides["torch"])
        lines.append(f"| {case} | {m * 1e3:.1f} ms | {t * 1e3:.1f} ms | {m / t:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    path = os.path.join(root, "bench", "results", f"alone-{stamp}.md")
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
