"""Training steps with each framework alone in its own fresh process, under its own defaults
(`python -m bench.alone [model|programs]`, from the repository root).

The main harness times minicnn and PyTorch in one process, and so has to give both OpenMP pools
one wait policy: `import minicnn` sets a short spin (GOMP_SPINCOUNT=3000; before, no spin at all,
OMP_WAIT_POLICY=PASSIVE, which slowed PyTorch's LeNet-5 step at batch 64, 2 threads, from 5.4 to
8.5 ms), which PyTorch's pool then gets too, while PyTorch's own long spin in the same process
slows minicnn's kernels several times over. Here neither side sees the other: each case runs in a process of its own, the
frameworks alternate round by round, and the medians, spreads (p90/p50) and their ratio are
written to bench/results/<family>-<time>.md (and .json) with the load and the OpenBLAS kernel
each child used.

Families (CASES):
- model: the model steps of bench/cases/model.py (ResNet-18 CIFAR, LeNet-5); by default at
  2 threads, with the environment as given; results alone-<time>.md.
- programs: the four training programs of examples/ (bench/programs.py: the MNIST example, the
  CIFAR-10 tutorial, a CIFAR ResNet-18 at batch 128, DCGAN at 64x64), by default at 1 and at
  2 threads, once with the environment as given and once with OPENBLAS_CORETYPE and
  OPENBLAS_L2_SIZE removed from the children's environment (once only when the given one sets
  neither); results programs-<time>.md.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, NamedTuple

from . import programs
from .report import blas_now

BLAS_KERNEL_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "OPENBLAS_THREAD_TIMEOUT", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
ENVS = {"given": "the environment as given",
        "unset": "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the children's environment"}


class Case(NamedTuple):
    family: str
    build: Callable      # (lib, quick) -> (step, description); lib is minicnn or torch
    steps: int           # timed steps per child process
    warmup: int          # untimed steps before them (the first one compiles, allocates, ...)


def _model(model_name, n, train):
    """A step of bench/cases/model.py's models: minicnn's own, and PyTorch's written there."""
    def build(lib, quick):
        b = 2 if quick else n
        if lib.__name__ == "torch":
            from .cases.model import _torch_lenet5, _torch_resnet18_cifar  # noqa: PLC0415
            model = _torch_lenet5(lib, 10) if model_name == "lenet5" else \
                _torch_resnet18_cifar(lib, 10, 64)
        else:
            model = lib.models.LeNet5(10, image_size=28) if model_name == "lenet5" else \
                lib.models.resnet18_cifar(10, width=64)
        F = lib.nn.functional
        shape = (b, 1, 28, 28) if model_name == "lenet5" else (b, 3, 32, 32)
        x, y = lib.randn(*shape), lib.randint(0, 10, (b,))
        opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        model.train(train)

        def step():
            if train:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            else:
                with lib.no_grad():
                    model(x)
        return step, f"{'train' if train else 'inference'} step, batch {b}"
    return build


CASES = {
    "resnet18_cifar_train_b32": Case("model", _model("resnet18", 32, True), 8, 3),
    "resnet18_cifar_train_b8": Case("model", _model("resnet18", 8, True), 8, 3),
    "lenet5_train_b64": Case("model", _model("lenet5", 64, True), 40, 3),
    "resnet18_cifar_inference_b32": Case("model", _model("resnet18", 32, False), 8, 3),
    "mnist": Case("programs", programs.mnist, 50, 5),
    "cifar10_tutorial": Case("programs", programs.cifar10_tutorial, 400, 20),
    "cifar_resnet": Case("programs", programs.cifar_resnet, 8, 2),
    "dcgan": Case("programs", programs.dcgan, 10, 2),
}
FAMILIES = {"model": {"threads": [2], "env": ["given"], "prefix": "alone"},
            "programs": {"threads": [1, 2], "env": ["given", "unset"], "prefix": "programs"}}


def _child(spec):
    """Run in the child: time `spec['case']` on `spec['side']`; a dict of the step times and
    what this process ran with."""
    side, case = spec["side"], CASES[spec["case"]]
    if side == "torch":
        import torch as lib  # noqa: PLC0415
    else:
        import minicnn as lib  # noqa: PLC0415
    lib.set_num_threads(spec["threads"])
    lib.manual_seed(0)
    step, what = case.build(lib, spec["quick"])
    for _ in range(spec["warmup"]):
        step()
    times = []
    for _ in range(spec["steps"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    info = {"times": times, "what": what, "version": lib.__version__,
            "blas": blas_now(),     # this child's OpenBLAS (NumPy's: minicnn's GEMMs) and vars
            "env": {k: os.environ.get(k) for k in THREAD_VARS + BLAS_KERNEL_VARS},
            "minicnn_loaded": "minicnn" in sys.modules}
    if side == "torch":
        info["cpu_capability"] = lib.backends.cpu.get_cpu_capability()   # its own kernels
    return info


def _spread(times):
    """p90/p50 of one child's step times (1.0: every step took the same time)."""
    if len(times) < 2:
        return 1.0
    return statistics.quantiles(times, n=10, method="inclusive")[8] / statistics.median(times)


def _ms(t):
    return f"{t * 1e3:.2f} ms" if t < 0.01 else f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def _git(root):
    def run(*a):
        try:
            return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return run("rev-parse", "--short", "HEAD") or "?", bool(run("status", "--porcelain",
                                                                "--untracked-files=no"))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def _blocks(args):
    """[(env key, label, child environment, threads)] in the order they run."""
    given = dict(os.environ)
    envs = []
    for key in args.env:
        env = given if key == "given" else \
            {k: v for k, v in given.items() if k not in BLAS_KERNEL_VARS}
        label = ENVS[key]
        if key == "unset" and "given" in args.env and \
                not any(k in given for k in BLAS_KERNEL_VARS):
            continue        # the same environment: reported on the given run's heading
        if key == "given" and not any(k in given for k in BLAS_KERNEL_VARS):
            label += (", which sets neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE (so it is "
                      "also the run with both unset" +
                      (", which was not repeated)" if "unset" in args.env else ")"))
        envs.append((key, label, env))
    return [(key, label, env, t) for key, label, env in envs for t in args.threads]


def _run_child(root, env, spec):
    done = subprocess.run([sys.executable, "-m", "bench.alone", "--child", json.dumps(spec)],
                          cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"the {spec['side']} child of {spec['case']} failed "
                         f"(exit status {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.alone", description=__doc__.split("\n")[0])
    p.add_argument("family", nargs="?", default="model", choices=sorted(FAMILIES))
    p.add_argument("--threads", type=int, nargs="+",
                   help="thread counts, each its own pass (model: 2; programs: 1 2)")
    p.add_argument("--env", nargs="+", choices=sorted(ENVS),
                   help="given: the environment as it is; unset: without OPENBLAS_CORETYPE and "
                        "OPENBLAS_L2_SIZE (model: given; programs: given unset)")
    p.add_argument("--rounds", type=int, help="default 3 (--quick: 1)")
    p.add_argument("--only", nargs="+", choices=sorted(CASES), help="cases of the family")
    p.add_argument("--steps", type=int, help="timed steps per child (default: per case)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default: per case)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny batches, 3 steps after 1 of warm-up, 1 round")
    p.add_argument("--out", help="directory for the results (default bench/results)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0

    fam = FAMILIES[args.family]
    args.threads = args.threads or fam["threads"]
    args.env = args.env or fam["env"]
    cases = args.only or [c for c in CASES if CASES[c].family == args.family]
    wrong = [c for c in cases if CASES[c].family != args.family]
    if wrong:
        p.error(f"not in the {args.family} family: {', '.join(wrong)}")
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.quick:
        args.steps, args.warmup = args.steps or 3, 1 if args.warmup is None else args.warmup
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    started = datetime.datetime.now(datetime.timezone.utc)
    stamp = started.strftime("%Y%m%d-%H%M%S")

    blocks = []
    for key, label, env, threads in _blocks(args):
        runs = {c: {"minicnn": [], "torch": []} for c in cases}
        load = [os.getloadavg()[0]]
        for r in range(args.rounds):
            for c in cases:
                for side in (("minicnn", "torch") if r % 2 == 0 else ("torch", "minicnn")):
                    spec = {"side": side, "case": c, "threads": threads, "quick": args.quick,
                            "steps": args.steps or CASES[c].steps,
                            "warmup": CASES[c].warmup if args.warmup is None else args.warmup}
                    res = _run_child(root, env, spec)
                    runs[c][side].append(res)
                    print(f"{threads} thread(s), env {key}, round {r + 1}/{args.rounds}: {c} "
                          f"{side} {_ms(statistics.median(res['times']))} "
                          f"(p90/p50 {_spread(res['times']):.2f})", file=sys.stderr, flush=True)
            load.append(os.getloadavg()[0])
        blocks.append({"env": key, "label": label, "threads": threads, "load": load,
                       "runs": runs})

    text = _report(args, cases, blocks, started, root)
    print(text)
    out = args.out or os.path.join(root, "bench", "results")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{fam['prefix']}-{stamp}")
    with open(path + ".md", "w") as f:
        f.write(text)
    with open(path + ".json", "w") as f:
        json.dump({"family": args.family, "created": started.isoformat(), "argv": sys.argv,
                   "rounds": args.rounds, "quick": args.quick, "cases": cases,
                   "blocks": blocks}, f, indent=1)
    print(f"wrote {path}.md and .json")
    return 0


def _report(args, cases, blocks, started, root):
    commit, dirty = _git(root)
    first = next(iter(blocks[0]["runs"].values())) if blocks else None
    versions = (f"minicnn {first['minicnn'][0]['version']}, PyTorch {first['torch'][0]['version']}"
                if first and first["minicnn"] and first["torch"] else "")
    given = {k: os.environ[k] for k in THREAD_VARS if k in os.environ}
    lines = [f"# Each framework alone in its own process: {args.family} "
             f"({started.strftime('%Y-%m-%d %H:%M:%S')} UTC)", "",
             f"- {_cpu_model()}, {os.cpu_count()} cores; commit {commit}"
             f"{' (uncommitted changes)' if dirty else ''}; Python {platform.python_version()}, "
             f"{versions}" + ("; QUICK (smoke run: tiny sizes, not a measurement)"
                              if args.quick else ""),
             f"- rounds {args.rounds}; each child process times one framework on one case: "
             "warm-up steps, then timed steps on fixed random data; the order of the two "
             "frameworks alternates from round to round (minicnn first in odd rounds). "
             "Median: the median over the rounds of each child's median step time; p90/p50: the "
             "median over the rounds of each child's p90/p50 (1.00: every step the same); "
             "ratio: minicnn median / PyTorch median (lower is better for minicnn).",
             "- both sides call set_num_threads(threads) (minicnn: Numba and BLAS pools, "
             "PyTorch: its OpenMP pool); thread variables in the given environment: "
             + (", ".join(f"{k}={v}" for k, v in given.items()) or "none"),
             "- `python -m " + " ".join(["bench.alone"] + sys.argv[1:]) + "`"]
    for b in blocks:
        lines += ["", f"## {b['threads']} thread{'s' if b['threads'] != 1 else ''}, "
                  f"{b['label']}", "",
                  "- 1-min load before and after each round: "
                  + ", ".join(f"{v:.2f}" for v in b["load"])]
        mc_blas = sorted({res["blas"] for c in cases for res in b["runs"][c]["minicnn"]})
        th_caps = sorted({res["cpu_capability"] for c in cases for res in b["runs"][c]["torch"]})
        th_blas = sorted({res["blas"] for c in cases for res in b["runs"][c]["torch"]})
        lines += [f"{line} (minicnn children)" for line in mc_blas]
        lines.append(f"- PyTorch children: CPU capability {', '.join(th_caps)} (its own "
                     "kernels; NumPy's OpenBLAS, loaded there only to be read: "
                     + "; ".join(s.removeprefix("- BLAS: ") for s in th_blas) + ")")
        if any(res["minicnn_loaded"] for c in cases for res in b["runs"][c]["torch"]):
            lines.append("- WARNING: minicnn was imported in a PyTorch child")
        lines += ["", "| case | what | minicnn median | p90/p50 | PyTorch median | p90/p50 | "
                  "ratio |", "|---|---|---|---|---|---|---|"]
        for c in cases:
            sides = b["runs"][c]
            med = {s: statistics.median(statistics.median(r["times"]) for r in sides[s])
                   for s in sides}
            spr = {s: statistics.median(_spread(r["times"]) for r in sides[s]) for s in sides}
            steps = len(sides["minicnn"][0]["times"])
            lines.append(f"| {c} | {sides['minicnn'][0]['what']}; {steps} steps | "
                         f"{_ms(med['minicnn'])} | {spr['minicnn']:.2f} | {_ms(med['torch'])} | "
                         f"{spr['torch']:.2f} | {med['minicnn'] / med['torch']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
