"""minicnn against PyTorch, case by case (see bench/README.md).

    minicnn bench [--device cpu|cuda] [--only FAMILY_OR_NAME ...] [--quick] [--threads N]
                  [--out DIR] [--tf32] [--repeats R] [--no-plots] [--list]
    minicnn bench compare A.json B.json [--threshold 0.05]

The same as `python -m minicnn.bench ...`, or `python -m bench ...` from the repository root
(bench/ installs as minicnn.bench; its imports are relative so that both names work).

Threads: both sides are pinned to the same count N (default: the cores this process may use).
Before NumPy is imported this module sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS
and NUMBA_NUM_THREADS to N; afterwards it calls torch.set_num_threads(N), numba.set_num_threads(N)
and, when threadpoolctl is installed, threadpool_limits(N) for OpenBLAS/OpenMP (which also covers
`minicnn bench`, where NumPy is already loaded). What was actually in force is recorded in the
results file (settings.thread_pinning).
"""
import argparse
import os
import sys

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_BLAS_KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")   # recorded: they pick the kernels
PROG = f"python -m {__package__}"     # bench, or minicnn.bench when installed


def _default_results_dir():
    """bench/results in a checkout; ./bench-results when installed (not into site-packages)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    return here if os.path.isdir(here) else "bench-results"


def _usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _early_env(argv):
    """Thread environment variables, set before NumPy loads when it has not yet."""
    threads = None
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
    try:
        threads = int(threads) if threads is not None else _usable_cores()
    except ValueError:
        return
    if "numpy" not in sys.modules:
        for k in _THREAD_ENV:
            os.environ[k] = str(threads)
    # `import minicnn` sets the OpenMP workers' spin (GOMP_SPINCOUNT, minicnn/__init__.py):
    # imported here, after the thread variables and before torch, so torch's pool gets the same
    import minicnn  # noqa: F401, PLC0415


def pin_threads(n):
    """Pin torch, Numba and the BLAS/OpenMP pools to n threads; return what is in force."""
    import numba  # noqa: PLC0415
    import numpy  # noqa: PLC0415, F401 -- load OpenBLAS so threadpoolctl can see it
    import torch  # noqa: PLC0415
    info = {"requested": n, "env": {k: os.environ.get(k) for k in _THREAD_ENV + _BLAS_KERNEL_ENV
                                    + ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}
    before = (torch.get_num_threads(), numba.get_num_threads())

    def restore():
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
        if getattr(pin_threads, "_limits", None) is not None:
            pin_threads._limits.restore_original_limits()
            pin_threads._limits = None
    pin_threads.restore = restore
    torch.set_num_threads(n)
    info["torch"] = torch.get_num_threads()
    try:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        info["numba"] = numba.get_num_threads()
    except Exception as exc:  # noqa: BLE001
        info["numba"] = f"not set: {exc}"
    try:
        from threadpoolctl import threadpool_info, threadpool_limits  # noqa: PLC0415
        pin_threads._limits = threadpool_limits(limits=n)   # kept alive for the whole run
        # with the kernel the BLAS picked (OPENBLAS_CORETYPE=Haswell makes OpenBLAS run its AVX2
        # kernels on an AVX-512 CPU: 34 instead of 54 GFLOP/s here, issue 17)
        info["threadpoolctl"] = [f"{p.get('internal_api')} {p.get('architecture')} "
                                 f"{p.get('num_threads')}" for p in threadpool_info()]
    except ImportError:
        info["threadpoolctl"] = "not installed (BLAS threads from the environment variables)"
    if n != info["torch"] or (isinstance(info["numba"], int) and info["numba"] != n):
        print(f"warning: threads not equal on both sides: {info}", file=sys.stderr)
    return info


def _parse(argv):
    p = argparse.ArgumentParser(prog=PROG,
                                description="benchmark minicnn against PyTorch (bench/README.md)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--only", nargs="+", metavar="FAMILY_OR_NAME", default=None,
                   help="families, case names or family/name to run (default: all)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, few repeats")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both sides (default: the usable cores)")
    p.add_argument("--out", default=_default_results_dir(),
                   help="results folder (default: bench/results in a checkout, ./bench-results "
                        "when installed)")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 on both sides (default: strict fp32 on both)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per side and phase")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-save", action="store_true", help="print only, write no files")
    p.add_argument("--list", action="store_true", help="list the registered cases and exit")
    return p.parse_args(argv)


def _compare_main(argv):
    p = argparse.ArgumentParser(prog=f"{PROG} compare",
                                description="which cases got faster or slower from A to B")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="smallest relative change that counts (default 0.05); the runs' own "
                        "relative IQR raises it")
    args = p.parse_args(argv)
    import json  # noqa: PLC0415

    from . import report  # noqa: PLC0415
    with open(args.a) as f:
        a = json.load(f)
    with open(args.b) as f:
        b = json.load(f)
    rows = report.compare_results(a, b, args.threshold)
    print(report.compare_text(a, b, rows, args.a, args.b))
    return 0


def _check_options(args):
    """The first bad option as a one-line message naming it (issue 23), or None."""
    for flag in ("threads", "repeats"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            return f"--{flag} must be a positive integer, got {value}"
    if not args.no_save and os.path.exists(args.out) and not os.path.isdir(args.out):
        return f"--out {args.out} is a file: give a folder (made if missing)"
    return None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        return _compare_main(argv[1:])
    _early_env(argv)
    args = _parse(argv)
    problem = _check_options(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2

    from . import registry  # noqa: PLC0415
    import_errors = registry.discover()
    if args.list:
        for c in registry.CASES.values():
            print(f"{c.key:<40} tags={','.join(c.tags)}")
        for mod, e in import_errors.items():
            print(f"bench/cases/{mod}.py failed to import: {e}")
        return 0
    cases = registry.select(args.only, args.device)
    if args.only and not cases:
        print(f"no case matches --only {' '.join(args.only)} on {args.device} "
              f"(see {PROG} --list)", file=sys.stderr)
        return 2

    threads = args.threads or _usable_cores()
    pinning = pin_threads(threads)
    try:
        return _run(args, argv, threads, pinning, import_errors, cases)
    finally:
        pin_threads.restore()      # matters when called in-process (minicnn bench, tests)


def _run(args, argv, threads, pinning, import_errors, cases):
    import minicnn as mc  # noqa: PLC0415
    import torch  # noqa: PLC0415
    if args.device == "cuda":
        if not mc.cuda.is_available() or not torch.cuda.is_available():
            print("--device cuda: CUDA is not available to both minicnn (CuPy) and torch",
                  file=sys.stderr)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    # minicnn's switch (CuPy's cuBLAS compute type and math mode); restored after the run
    tf32_before = mc.backends.allow_tf32
    mc.backends.allow_tf32 = args.tf32
    try:
        return _run_cases(args, argv, threads, pinning, import_errors, cases)
    finally:
        mc.backends.allow_tf32 = tf32_before


def _run_cases(args, argv, threads, pinning, import_errors, cases):
    import datetime  # noqa: PLC0415

    import minicnn as mc  # noqa: PLC0415

    from . import harness, registry, report  # noqa: PLC0415
    settings = harness.Settings(quick=args.quick, repeats=args.repeats, device=args.device)
    timer = harness.make_timer(args.device)
    ctx = registry.Context(device=args.device, quick=args.quick, tf32=args.tf32)
    dev = harness.device_info(args.device)
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"device: {dev['name']} ({args.device}), threads {threads}, quick {args.quick}, "
          f"TF32 {'on' if args.tf32 else 'off'}; measuring ceilings...", flush=True)
    load_before = harness.load_average()
    if args.device == "cpu" and load_before is not None and load_before > _usable_cores():
        print(f"warning: the 1-minute load average ({load_before}) is above one per core: CPU "
              "timings are skewed, PyTorch's more than minicnn's", file=sys.stderr)
    ceilings = harness.measure_ceilings(args.device, args.quick)
    print(f"ceilings: SGEMM {ceilings['sgemm_gflops']:.1f} GFLOP/s, copy "
          f"{ceilings['copy_gbps']:.1f} GB/s", flush=True)

    results_cases = []
    interrupted = None
    try:
        for c in cases:
            print(f"  {c.key} ...", end="", flush=True)
            r = harness.run_case(c, ctx, timer, settings, ceilings)
            results_cases.append(r)
            print(f" {r['status']}", flush=True)
    except KeyboardInterrupt:   # e.g. a time limit (SIGINT): keep and write what was measured
        interrupted = [c.key for c in cases[len(results_cases):]]
        print(f"\ninterrupted: {len(results_cases)} case(s) done, not run: "
              f"{', '.join(interrupted)}", flush=True)

    results = {
        "schema": 1,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": dev,
        "versions": harness.versions(),
        "git": harness.git_info(),
        "settings": {"device": args.device, "threads": threads, "thread_pinning": pinning,
                     "tf32": args.tf32, "tf32_cupy": mc.devices.tf32_state(),
                     "quick": args.quick, "only": args.only,
                     "timer": "CUDA events (cupy / torch)" if args.device == "cuda"
                     else "time.perf_counter", "timing": settings.as_dict(),
                     "argv": argv,
                     "load_average_1min": {"before": load_before,
                                           "after": harness.load_average()}},
        "ceilings": ceilings,
        "import_errors": import_errors,
        "interrupted_before": interrupted,
        "cases": results_cases,
        "summary": harness.summarize(results_cases),
    }
    print()
    print(report.table_text(results))
    if not args.no_save:
        stem = f"{harness.slug(args.device, dev['name'])}-{now.strftime('%Y%m%d-%H%M%S')}"
        paths = report.write_all(results, args.out, stem, plots=not args.no_plots)
        print("\nwrote " + ", ".join(paths))
    bad = results["summary"]["status_counts"]
    return 1 if bad["WRONG"] or bad["ERROR"] or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
