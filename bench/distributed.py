"""The distributed family: weak scaling of data-parallel training, 1 rank against 2.

    python -m bench.distributed [--batch 32] [--steps 8] [--warmup 2] [--rounds 2]

ResNet-18 (CIFAR variant) training steps (forward, backward, SGD with momentum) on fixed random
data, with the per-rank batch fixed (weak scaling), each process with one Numba and one BLAS
thread (two ranks of two threads on two cores run 2-4x slower: oversubscription). Three
configurations alternate in rounds, so a change in the machine's load reaches all of them:
one process; two processes under mpiexec that train alone (no communication: what sharing the
machine costs); two ranks in DistributedDataParallel. Reported per round:

    step_1, step_2   median step time of 1 process and of 2 DDP ranks (rank 0's clock)
    step_2_alone     the same for 2 processes that do not communicate
    efficiency       step_1 / step_2 (1.0: the second rank's batch came for free)
    allreduce        one blocking allreduce of all gradient buckets, alone (median of 5)
    exposed          per step, what rank 0 spent launching the bucket allreduces and waiting for
                     them at the end of backward (DistributedDataParallel.comm_stats): the
                     transfer not yet done, and the wait for the slower rank to get there
    comm_cost        step_2 - step_2_alone: what communicating added to a step
    hidden           1 - comm_cost / allreduce: the share of the allreduce's time that did not
                     lengthen the step (it ran behind backward); n/a when the load moved the
                     step times more than communicating did (comm_cost < 0)

The load average is recorded before and after: a loaded machine makes both sides slower and the
two ranks compete with the load for the cores. Results: bench/results/distributed-<date>.{json,md}.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from .report import blas_now

ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


def worker(args):
    """One rank's measurement; rank 0 writes the JSON to args.out."""
    import numpy as np
    import minicnn as mc
    import minicnn.distributed as dist
    from minicnn.distributed.launch import world_size_from_env

    ranks = world_size_from_env()
    if ranks > 1:
        dist.init_process_group()
    rank = dist.get_rank()
    mc.manual_seed(0)
    net = mc.models.resnet18_cifar(num_classes=10)
    ddp = ranks > 1 and not args.alone
    model = mc.nn.parallel.DistributedDataParallel(net) if ddp else net
    opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(rank)
    x = mc.tensor(rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    y = mc.tensor(rng.integers(0, 10, args.batch))

    def step():
        opt.zero_grad()
        mc.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    before = dict(model.comm_stats) if ddp else None
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    result = {"ranks": ranks, "batch_per_rank": args.batch, "step_s": times}
    if ddp:
        after = model.comm_stats
        result["exposed_s"] = (after["wait_s"] + after["launch_s"] - before["wait_s"]
                               - before["launch_s"]) / args.steps
        result["buckets"] = len(model.bucket_sizes)
        result["allreduce_s"] = _allreduce_alone(model, dist)
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump(result, f)


def _allreduce_alone(model, dist):
    """Median time of blocking allreduces of every bucket (as DDP sends them), nothing else."""
    import statistics
    buffers = [b.buffer.copy() for b in model._reducer.buckets]
    times = []
    for _ in range(5):
        dist.barrier()
        t0 = time.perf_counter()
        works = [dist.allreduce_array(b, "sum", async_op=True) for b in buffers]
        for w in works:
            w.wait()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _run(ranks, args, out, alone=False):
    from minicnn.distributed.launch import find_mpiexec
    cmd = [sys.executable, "-m", "bench.distributed", "--worker", "--out", out,
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if alone:
        cmd.append("--alone")
    if ranks > 1:
        cmd = [find_mpiexec(), "-n", str(ranks)] + cmd
    env = dict(os.environ, **ONE_THREAD)
    subprocess.run(cmd, env=env, check=True, timeout=1800,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(out) as f:
        return json.load(f)


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32, help="per-rank batch (default 32)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".distributed-{stamp}.tmp.json")
    report = {"date": stamp, "load_before": _uptime(), "cpu_count": os.cpu_count(),
              "blas": blas_now(), "settings": vars(args), "rounds": []}
    for r in range(args.rounds):
        one, alone, two = _run(1, args, tmp), _run(2, args, tmp, alone=True), _run(2, args, tmp)
        s1, s2, s2_alone = (_median(r["step_s"]) for r in (one, two, alone))
        cost = s2 - s2_alone
        row = {"step_1_s": s1, "step_2_alone_s": s2_alone, "step_2_s": s2,
               "efficiency": s1 / s2, "allreduce_s": two["allreduce_s"],
               "exposed_s": two["exposed_s"], "comm_cost_s": cost,
               # None where the load moved the step times more than communicating did
               "hidden": None if cost < 0 else max(0.0, 1 - cost / two["allreduce_s"]),
               "buckets": two["buckets"]}
        report["rounds"].append(row)
        print(f"round {r + 1}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items()),
              flush=True)
    os.remove(tmp)
    report["load_after"] = _uptime()
    base = os.path.join(folder, f"distributed-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(_markdown(report))
    print(_markdown(report))
    print(f"wrote {base}.json and .md")
    return 0


def _fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


def _percent(value):
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _markdown(report):
    s = report["settings"]
    lines = [f"# distributed: weak scaling, ResNet-18 CIFAR, batch {s['batch']} per rank, "
             f"one thread per rank ({report['date']})", "",
             f"load before: `{report['load_before']}`", f"load after: `{report['load_after']}`",
             f"{report['cpu_count']} CPUs; {s['steps']} timed steps after {s['warmup']} per run",
             report.get("blas", "- BLAS: not recorded"),
             "", "| round | 1 process s/step | 2 alone s/step | 2 DDP ranks s/step | efficiency "
             "| allreduce ms | exposed ms/step | comm cost ms/step | hidden | buckets |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(report["rounds"], 1):
        lines.append(f"| {i} | {r['step_1_s']:.3f} | {r['step_2_alone_s']:.3f} | "
                     f"{r['step_2_s']:.3f} | {r['efficiency'] * 100:.0f}% | "
                     f"{r['allreduce_s'] * 1e3:.1f} | {r['exposed_s'] * 1e3:.1f} | "
                     f"{r['comm_cost_s'] * 1e3:.0f} | {_percent(r['hidden'])} | "
                     f"{r['buckets']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
