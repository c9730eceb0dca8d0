"""Step-time spread of a small training step, minicnn beside PyTorch, under CPU thread settings.

    python -m bench.thread_spread [--steps 200] [--rounds 3] [--model tutorial|mnist]

Each configuration runs in its own process (OpenBLAS reads its settings when NumPy loads), in
rounds that alternate the configurations, so a change in the machine's load reaches all of them.
A step is forward, backward and an SGD step of the CIFAR-10 tutorial's CNN (batch 32, 3x32x32)
or the MNIST example's CNN (batch 64, 1x28x28) on fixed random data. A run is 200 steps (after
20 of warm-up) in one process; its spread is p90/p50 of its step times (1.0: perfectly steady).
Reported per configuration: the median and range over the runs of p50 and of the spread (pooling
the runs would mix the load of different minutes into one distribution).

Configurations: `numba`/`blas` are the two pools' widths; `spin` means OpenBLAS's idle workers
spin (~0.1 s after each product, its default), `quiet` that OPENBLAS_THREAD_TIMEOUT=1 makes them
sleep at once (what `import minicnn` sets when it loads NumPy); `default` is what `import
minicnn` gives with no thread call (see minicnn/threads.py), whose Numba workers spin for
GOMP_SPINCOUNT=3000 rounds after a kernel (minicnn/__init__.py), or not at all with
OMP_WAIT_POLICY=PASSIVE (minicnn's setting before).
"""
import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = {
    # name: (library, environment, settings)
    "torch 2 threads (its default)": ("torch", {}, {"threads": 2}),
    "torch 1 thread": ("torch", {}, {"threads": 1}),
    "minicnn default: numba 2 / blas 1": ("minicnn", {}, {"order": "numpy"}),
    "minicnn default, Numba's workers spinning 10000 rounds": (
        "minicnn", {"GOMP_SPINCOUNT": "10000"}, {"order": "numpy"}),
    "minicnn default, Numba's workers never spinning (OMP_WAIT_POLICY=PASSIVE)": (
        "minicnn", {"OMP_WAIT_POLICY": "PASSIVE"}, {"order": "numpy"}),
    "minicnn before this default: numba 2 / blas 2, spin": (
        "minicnn", {}, {"order": "numpy", "numba": 2, "blas": 2}),
    "minicnn set_num_threads(2): numba 2 / blas 2, quiet": (
        "minicnn", {"OPENBLAS_THREAD_TIMEOUT": "1"}, {"order": "numpy", "numba": 2, "blas": 2}),
    "minicnn numba 1 / blas 2, quiet": (
        "minicnn", {"OPENBLAS_THREAD_TIMEOUT": "1"}, {"order": "numpy", "numba": 1, "blas": 2}),
    "minicnn set_num_threads(1): numba 1 / blas 1": (
        "minicnn", {}, {"order": "numpy", "numba": 1, "blas": 1}),
}


def _net(nn, F, flatten, model):
    class Tutorial(nn.Module):          # the CIFAR-10 tutorial's classifier
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = flatten(x, 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    class Mnist(nn.Module):             # the MNIST example's classifier (without dropout)
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            return self.fc2(F.relu(self.fc1(flatten(x, 1))))

    return (Tutorial if model == "tutorial" else Mnist)()


def worker(args):
    import numpy as np  # noqa: PLC0415 -- first or second, as the configuration says
    settings = json.loads(args.settings)
    if args.lib == "torch":
        import torch as lib  # noqa: PLC0415
        lib.set_num_threads(settings["threads"])
        flatten = lib.flatten
    else:
        import minicnn as lib  # noqa: PLC0415
        flatten = lambda x, d: x.reshape(x.shape[0], -1)  # noqa: E731
        if "numba" in settings:
            import numba  # noqa: PLC0415
            from threadpoolctl import threadpool_limits  # noqa: PLC0415
            numba.set_num_threads(settings["numba"])
            worker.limits = threadpool_limits(settings["blas"], user_api="blas")
    nn, F = lib.nn, lib.nn.functional
    lib.manual_seed(0)
    shape = (32, 3, 32, 32) if args.model == "tutorial" else (64, 1, 28, 28)
    net = _net(nn, F, flatten, args.model)
    opt = lib.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, shape[0]))
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    threads = {}
    if args.lib == "minicnn":
        from bench.report import blas_now  # noqa: PLC0415
        import numba  # noqa: PLC0415
        from threadpoolctl import threadpool_info  # noqa: PLC0415
        threads = {"numba": numba.get_num_threads(),
                   "blas": [p["num_threads"] for p in threadpool_info()
                            if p["user_api"] == "blas"],
                   "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                   "blas_kernel": blas_now()}    # which OpenBLAS kernel ran (issue 17)
    print(json.dumps({"times": times[args.warmup:], "threads": threads}))


def _stats(times):
    import numpy as np  # noqa: PLC0415
    t = np.asarray(times) * 1e3
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "spread": p90 / p50, "n": len(t)}


def _run(name, args):
    lib, env, settings = CONFIGS[name]
    env = {**{k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}, **env}
    first = "import minicnn; " if settings.get("order") == "minicnn" else ""
    code = (f"{first}import sys; sys.argv = sys.argv[1:]; "
            "from bench.thread_spread import main; main()")
    cmd = [sys.executable, "-c", code, "x", "worker", "--lib", lib, "--settings",
           json.dumps({k: v for k, v in settings.items() if k != "order"}),
           "--model", args.model, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return json.loads(out.stdout.strip().splitlines()[-1])


def drive(args):
    import statistics  # noqa: PLC0415
    names = args.only or list(CONFIGS)
    runs = {n: [] for n in names}
    info, load = {}, [os.getloadavg()[0]]
    for r in range(args.rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            res = _run(n, args)
            runs[n].append(_stats(res["times"]))
            info[n] = res["threads"]
            print(f"round {r + 1} {n}: p50 {runs[n][-1]['p50_ms']:.2f} ms, "
                  f"p90/p50 {runs[n][-1]['spread']:.2f}", file=sys.stderr, flush=True)
        load.append(os.getloadavg()[0])
    print(f"\n{args.model} step, {args.steps} steps per run, {args.rounds} runs per "
          f"configuration, load average {min(load):.1f}-{max(load):.1f}, {os.cpu_count()} "
          "cores\n")
    kernels = sorted({i["blas_kernel"] for i in info.values() if "blas_kernel" in i})
    for line in kernels:          # blas_line: "- BLAS: [...] (OPENBLAS_CORETYPE=..., ...)"
        print(f"{line} (minicnn children; PyTorch uses its own kernels)\n")
    print("| configuration | p50 ms: median of runs (min-max) | p90/p50 of a run: median "
          "(min-max) |\n|---|---|---|")
    for n, rs in runs.items():
        p50, spread = [r["p50_ms"] for r in rs], [r["spread"] for r in rs]
        print(f"| {n} | {statistics.median(p50):.1f} ({min(p50):.1f}-{max(p50):.1f}) | "
              f"{statistics.median(spread):.2f} ({min(spread):.2f}-{max(spread):.2f}) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "steps": args.steps, "rounds": args.rounds,
                       "load": load, "runs": runs, "threads": info}, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="drive", choices=["drive", "worker"])
    p.add_argument("--lib", default="minicnn")
    p.add_argument("--settings", default="{}")
    p.add_argument("--model", default="tutorial", choices=["tutorial", "mnist"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="*")
    p.add_argument("--json")
    args = p.parse_args()
    (worker if args.mode == "worker" else drive)(args)


if __name__ == "__main__":
    main()
