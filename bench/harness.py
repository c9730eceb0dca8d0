"""The measuring part of the harness: correctness gate, timers, ceilings, memory, environment.

Imported by bench/__main__.py only after the thread settings are in place (it imports NumPy).
"""
import gc
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
import tracemalloc

import numpy as np

from .registry import Context, Workload

PHASES = (("fwd", "mc_fwd", "torch_fwd", "flops", "bytes"),
          ("fwd_bwd", "mc_fwd_bwd", "torch_fwd_bwd", "flops_fwd_bwd", "bytes_fwd_bwd"))


class Settings:
    """How long and how often to measure. `quick` is a smoke run: few repeats, tiny budgets."""

    def __init__(self, quick=False, repeats=None, device="cpu"):
        self.quick = quick
        if quick:
            self.warmup_s, self.min_warmup_calls = 0.005, 2
            self.repeat_s = 0.0005           # one repeat (of `number` calls) lasts at least this
            self.repeats, self.min_repeats = 3, 3
            self.budget_s = 0.05             # time per side per phase, before repeats are capped
        else:
            self.warmup_s, self.min_warmup_calls = 0.2, 3
            self.repeat_s = 0.02 if device == "cpu" else 0.005
            self.repeats, self.min_repeats = (15 if device == "cpu" else 30), 5
            self.budget_s = 3.0
        if repeats:
            self.repeats = self.min_repeats = int(repeats)

    def as_dict(self):
        return dict(vars(self))


# --------------------------------------------------------------------------------------------
# converting and comparing results
# --------------------------------------------------------------------------------------------

def to_numpy(x):
    """A minicnn Tensor, torch tensor, CuPy or NumPy array, or scalar -> NumPy (None stays)."""
    if x is None:
        return None
    mod = type(x).__module__ or ""
    if mod.startswith("torch"):
        return x.detach().cpu().numpy()
    if hasattr(x, "creator") and hasattr(x, "data") and mod.startswith("minicnn"):
        x = x.array
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def _flatten(obj, path="out"):
    if isinstance(obj, (list, tuple)):
        items = []
        for i, o in enumerate(obj):
            items.extend(_flatten(o, f"{path}[{i}]"))
        return items
    if isinstance(obj, dict):
        items = []
        for k in sorted(obj, key=str):
            items.extend(_flatten(obj[k], f"{path}[{k!r}]"))
        return items
    return [(path, obj)]


# With --tf32 both sides round GEMM inputs to a 10-bit mantissa, differently: an element's error
# then scales with its tensor's size, not its own value (a near-zero sum of large terms keeps
# the terms' error). The gate adds this fraction of max|torch| per tensor (TF32's unit roundoff
# is 2**-11 = 4.9e-4; sums over K terms grow it by ~sqrt(K) relative to a random-sign result).
TF32_SCALE_TOL = 5e-3


def compare(mc_out, th_out, atol, rtol, scale_tol=0.0):
    """None if minicnn matches torch within |mc - th| <= atol + rtol*|th|, else a message.

    scale_tol > 0 (TF32 runs) adds scale_tol * max|th| of each array to the bound.
    Also returns (max_abs_err, max_rel_err) over all compared arrays."""
    mc_items, th_items = _flatten(mc_out), _flatten(th_out)
    if [p for p, _ in mc_items] != [p for p, _ in th_items]:
        return (f"structure differs: minicnn returned {[p for p, _ in mc_items]}, "
                f"torch {[p for p, _ in th_items]}"), (math.inf, math.inf)
    max_abs = max_rel = 0.0
    for (path, a), (_, b) in zip(mc_items, th_items):
        a, b = to_numpy(a), to_numpy(b)
        if a is None or b is None:
            if a is None and b is None:
                continue
            which = "minicnn" if a is None else "torch"
            return f"{path}: {which} returned None", (math.inf, math.inf)
        if a.shape != b.shape:
            return f"{path}: shape {a.shape} (minicnn) != {b.shape} (torch)", (math.inf, math.inf)
        if a.size == 0:
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        nan_a, nan_b = np.isnan(a64), np.isnan(b64)
        if (nan_a != nan_b).any():
            i = np.unravel_index(int(np.argmax(nan_a != nan_b)), a.shape)
            return (f"{path}: NaN mismatch at {tuple(int(v) for v in i)}: minicnn {a64[i]}, "
                    f"torch {b64[i]}"), (math.inf, math.inf)
        with np.errstate(invalid="ignore"):
            err = np.where(nan_a, 0.0, np.abs(a64 - b64))
            err = np.where(np.isinf(a64) & (a64 == b64), 0.0, err)
        bound = atol + rtol * np.abs(np.where(nan_b, 0.0, b64))
        if scale_tol:
            finite = np.abs(b64[np.isfinite(b64)])
            bound = bound + scale_tol * (float(finite.max()) if finite.size else 0.0)
        abs_err = float(np.max(err))
        denom = np.abs(b64)
        rel = err[denom > 0] / denom[denom > 0]
        max_abs = max(max_abs, abs_err)
        max_rel = max(max_rel, float(rel.max()) if rel.size else 0.0)
        bad = ~(err <= bound)
        if bad.any():
            i = np.unravel_index(int(np.argmax(np.where(bad, err - bound, -np.inf))), a.shape)
            idx = tuple(int(v) for v in i)
            return (f"{path}: {int(bad.sum())}/{a.size} elements outside atol={atol:g} "
                    f"rtol={rtol:g}; worst at {idx}: minicnn {a64[i]:.6g}, torch {b64[i]:.6g} "
                    f"(abs err {err[i]:.3g})"), (max_abs, max_rel)
    return None, (max_abs, max_rel)


# --------------------------------------------------------------------------------------------
# timers
# --------------------------------------------------------------------------------------------

class CpuTimer:
    def sync(self):
        pass

    def measure(self, side, fn, number):
        """Seconds per call of `number` back-to-back calls."""
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number


class CudaTimer:
    """CUDA events: CuPy's for minicnn, torch's for torch, each on its library's current stream."""

    def __init__(self):
        import cupy  # noqa: PLC0415
        import torch  # noqa: PLC0415
        self.cupy, self.torch = cupy, torch

    def sync(self):
        self.cupy.cuda.get_current_stream().synchronize()
        self.torch.cuda.synchronize()

    def measure(self, side, fn, number):
        self.sync()
        if side == "mc":
            start, end = self.cupy.cuda.Event(), self.cupy.cuda.Event()
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            ms = self.cupy.cuda.get_elapsed_time(start, end)
        else:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            ms = start.elapsed_time(end)
        self.sync()
        return ms / 1e3 / number


def make_timer(device):
    return CudaTimer() if device == "cuda" else CpuTimer()


def _stats(samples):
    s = sorted(samples)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4, method="inclusive")
        q1, q3 = q[0], q[2]
    else:
        q1, q3 = s[0], s[-1]
    return {"median_s": statistics.median(s), "q1_s": q1, "q3_s": q3,
            "min_s": s[0], "max_s": s[-1], "repeats": len(s)}


def time_pair(timer, fns, settings):
    """Time {'mc': fn, 'torch': fn} alternately after warm-up; return per-side stats."""
    # warm-up (also estimates the time of one call)
    est = {}
    for side, fn in fns.items():
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            spent = time.perf_counter() - t0
            if (calls >= settings.min_warmup_calls and spent >= settings.warmup_s) \
                    or calls >= 10_000 or spent >= 10 * settings.warmup_s:
                break
        timer.sync()
        est[side] = max(timer.measure(side, fn, 1), 1e-7)
    number = {s: max(1, math.ceil(settings.repeat_s / est[s])) for s in fns}
    # as many repeats as fit the budget, within [min_repeats, repeats]; calls slower than a
    # second get at least 3 (a 5 s ResNet step would otherwise take minutes per side)
    repeats = {}
    for s in fns:
        one = number[s] * est[s]
        floor = 3 if one > 1.0 else settings.min_repeats
        repeats[s] = int(min(settings.repeats, max(floor, settings.budget_s / one)))
    samples = {s: [] for s in fns}
    order = list(fns)
    gc.collect()
    for r in range(max(repeats.values())):
        for side in (order if r % 2 == 0 else order[::-1]):   # alternate who goes first
            if len(samples[side]) < repeats[side]:
                samples[side].append(timer.measure(side, fns[side], number[side]))
    return {s: dict(_stats(samples[s]), number=number[s]) for s in fns}


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------

def peak_memory(device, fns, timer):
    """Peak bytes allocated during one call of each side (above what was allocated before).

    cuda: minicnn from CuPy's memory pool (a MemoryHook counting bytes handed out and returned),
    torch from torch.cuda.max_memory_allocated. cpu: minicnn from tracemalloc (NumPy reports its
    buffers to it); torch's CPU allocator is invisible to tracemalloc, so its figure is None."""
    out = {"method": None, "mc_peak_bytes": None, "torch_peak_bytes": None}
    if device == "cuda":
        import torch  # noqa: PLC0415
        from cupy.cuda import memory_hook  # noqa: PLC0415

        class PeakHook(memory_hook.MemoryHook):
            name = "bench_peak"

            def __init__(self):
                self.used = self.peak = 0

            def malloc_postprocess(self, **kw):
                self.used += kw.get("mem_size", 0)
                self.peak = max(self.peak, self.used)

            def free_postprocess(self, **kw):
                self.used -= kw.get("mem_size", 0)

        import cupy  # noqa: PLC0415
        gc.collect()
        timer.sync()
        pool = cupy.get_default_memory_pool()
        before = pool.used_bytes()
        hook = PeakHook()
        with hook:
            r = fns["mc"]()
            timer.sync()
            del r
        out["mc_peak_bytes"] = int(hook.peak)
        # absolute figures (PyTorch's "peak memory" is max_memory_allocated, parameters included)
        out["mc_peak_total_bytes"] = int(before + hook.peak)
        timer.sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        r = fns["torch"]()
        torch.cuda.synchronize()
        del r
        out["torch_peak_bytes"] = int(torch.cuda.max_memory_allocated() - base)
        out["torch_peak_total_bytes"] = int(torch.cuda.max_memory_allocated())
        out["method"] = "cupy MemoryHook (pool bytes handed out) / torch.cuda.max_memory_allocated"
    else:
        was = tracemalloc.is_tracing()
        if not was:
            tracemalloc.start()
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        r = fns["mc"]()
        peak = tracemalloc.get_traced_memory()[1]
        del r
        if not was:
            tracemalloc.stop()
        out["mc_peak_bytes"] = int(peak - base)
        out["method"] = "tracemalloc peak of one call (minicnn only; torch's CPU allocator untraced)"
    return out


# --------------------------------------------------------------------------------------------
# device ceilings
# --------------------------------------------------------------------------------------------

def _times(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def measure_ceilings(device, quick=False):
    """SGEMM rate and copy bandwidth measured here, with the run's thread settings."""
    if device == "cuda":
        import cupy  # noqa: PLC0415
        n = 2048 if quick else 8192
        nbytes = (64 if quick else 1024) << 20
        a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        src = cupy.ones(nbytes // 4, dtype=cupy.float32)
        dst = cupy.empty_like(src)

        def ev_times(fn, reps):
            fn()
            cupy.cuda.get_current_stream().synchronize()
            ts = []
            for _ in range(reps):
                s, e = cupy.cuda.Event(), cupy.cuda.Event()
                s.record()
                fn()
                e.record()
                e.synchronize()
                ts.append(cupy.cuda.get_elapsed_time(s, e) / 1e3)
            return ts
        t_mm = ev_times(lambda: cupy.matmul(a, b), 3 if quick else 20)
        t_cp = ev_times(lambda: cupy.copyto(dst, src), 3 if quick else 20)
        method = ("cupy.matmul float32 (TF32 only with --tf32: mc.backends.allow_tf32), cupy.copyto "
                  "(bytes = read + write), CUDA events, best of repeats")
    else:
        n = 512 if quick else 1536
        nbytes = (8 if quick else 128) << 20
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        src = np.ones(nbytes // 4, np.float32)
        dst = np.empty_like(src)
        np.matmul(a, b, out=c)
        np.copyto(dst, src)
        t_mm = _times(lambda: np.matmul(a, b, out=c), 3 if quick else 10)
        t_cp = _times(lambda: np.copyto(dst, src), 3 if quick else 10)
        method = ("numpy.matmul float32 (OpenBLAS/BLAS SGEMM), numpy.copyto "
                  "(bytes = read + write), perf_counter, best of repeats")
    # a ceiling is what the device can do: the best repeat (the median is kept for reference)
    return {"sgemm_gflops": 2 * n ** 3 / min(t_mm) / 1e9,
            "sgemm_gflops_median": 2 * n ** 3 / statistics.median(t_mm) / 1e9, "sgemm_n": n,
            "copy_gbps": 2 * nbytes / min(t_cp) / 1e9,
            "copy_gbps_median": 2 * nbytes / statistics.median(t_cp) / 1e9,
            "copy_bytes": nbytes, "method": method}


# --------------------------------------------------------------------------------------------
# running cases
# --------------------------------------------------------------------------------------------

def _err(exc):
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({tb[-1].filename.split(os.sep)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _first_call(timer, fn):
    timer.sync()
    t0 = time.perf_counter()
    out = fn()
    timer.sync()
    return out, time.perf_counter() - t0


def run_case(c, ctx, timer, settings, ceilings, log=print):
    """Build one case, gate it, time it. Returns the case's result dict (never raises)."""
    res = {"family": c.family, "name": c.name, "key": c.key,
           "meta": {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.meta.items()},
           "status": "OK", "message": None, "extra": {}, "phases": {}, "memory": None}
    try:
        w = c.fn(ctx.for_case(c.key))
        if not isinstance(w, Workload):
            raise TypeError(f"case {c.key} returned {type(w).__name__}, expected a Workload")
    except Exception as exc:  # noqa: BLE001
        res.update(status="ERROR", message="setup: " + _err(exc))
        return res
    res["extra"] = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                    for k, v in (w.extra or {}).items()}
    res["gate"] = {"atol": w.atol, "rtol": w.rtol,
                   "mode": "off" if w.check is False else "custom" if callable(w.check)
                   else "compare"}
    if getattr(ctx, "tf32", False) and res["gate"]["mode"] == "compare":
        res["gate"]["tf32_scale_tol"] = TF32_SCALE_TOL

    custom_msg = None
    done_custom = False
    last_ok = None
    for phase, mc_attr, th_attr, fl_attr, by_attr in PHASES:
        fns = {"mc": getattr(w, mc_attr), "torch": getattr(w, th_attr)}
        if fns["mc"] is None and fns["torch"] is None:
            continue
        ph = {"status": "OK", "message": None, "mc": None, "torch": None, "ratio": None,
              "flops": getattr(w, fl_attr), "bytes": getattr(w, by_attr),
              "max_abs_err": None, "max_rel_err": None}
        res["phases"][phase] = ph
        if fns["mc"] is None or fns["torch"] is None:
            ph.update(status="ERROR", message=f"{mc_attr} and {th_attr} must both be given")
            continue
        # first calls: also the correctness gate's inputs (Numba compiles here)
        try:
            mc_out, mc_first = _first_call(timer, fns["mc"])
        except Exception as exc:  # noqa: BLE001
            ph.update(status="ERROR", message="minicnn: " + _err(exc))
            continue
        try:
            th_out, th_first = _first_call(timer, fns["torch"])
        except Exception as exc:  # noqa: BLE001
            ph.update(status="ERROR", message="torch: " + _err(exc))
            continue
        ph["mc"], ph["torch"] = {"first_call_s": mc_first}, {"first_call_s": th_first}
        try:
            if w.check is False:
                ph["status"] = "UNCHECKED"
            elif callable(w.check):
                if not done_custom:
                    custom_msg, done_custom = w.check(), True
                    custom_msg = None if custom_msg in (None, True) else str(custom_msg)
                if custom_msg:
                    ph.update(status="WRONG", message=custom_msg)
            else:
                msg, (mabs, mrel) = compare(mc_out, th_out, w.atol, w.rtol,
                                            TF32_SCALE_TOL if getattr(ctx, "tf32", False) else 0.0)
                ph["max_abs_err"] = None if math.isinf(mabs) else mabs
                ph["max_rel_err"] = None if math.isinf(mrel) else mrel
                if msg:
                    ph.update(status="WRONG", message=msg)
        except Exception as exc:  # noqa: BLE001
            ph.update(status="ERROR", message="gate: " + _err(exc))
        del mc_out, th_out
        if ph["status"] not in ("OK", "UNCHECKED"):
            continue                      # a wrong or broken phase is never timed
        try:
            st = time_pair(timer, fns, settings)
        except Exception as exc:  # noqa: BLE001
            ph.update(status="ERROR", message="timing: " + _err(exc))
            continue
        for side in ("mc", "torch"):
            ph[side].update(st[side])
        ph["ratio"] = ph["mc"]["median_s"] / ph["torch"]["median_s"]
        for side in ("mc", "torch"):
            t = ph[side]["median_s"]
            if ph["flops"]:
                ph[side]["gflops"] = ph["flops"] / t / 1e9
                ph[side]["frac_sgemm"] = ph[side]["gflops"] / ceilings["sgemm_gflops"]
            if ph["bytes"]:
                ph[side]["gbps"] = ph["bytes"] / t / 1e9
                ph[side]["frac_copy"] = ph[side]["gbps"] / ceilings["copy_gbps"]
        last_ok = fns
    if last_ok is not None:
        try:
            res["memory"] = peak_memory(ctx.device, last_ok, timer)
        except Exception as exc:  # noqa: BLE001
            res["memory"] = {"method": None, "error": _err(exc)}
    statuses = [p["status"] for p in res["phases"].values()]
    for s in ("ERROR", "WRONG", "UNCHECKED"):
        if s in statuses:
            res["status"] = s
            res["message"] = next(p["message"] for p in res["phases"].values()
                                  if p["status"] == s)
            break
    if not statuses:
        res.update(status="ERROR", message="the Workload has no callables")
    return res


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(cases):
    fams = {}
    for r in cases:
        f = fams.setdefault(r["family"], {"cases": 0, "ok": 0, "ratios_fwd": [],
                                          "ratios_fwd_bwd": []})
        f["cases"] += 1
        f["ok"] += r["status"] in ("OK", "UNCHECKED")
        for ph in ("fwd", "fwd_bwd"):
            p = r["phases"].get(ph)
            if p and p.get("ratio"):
                f[f"ratios_{ph}"].append(p["ratio"])
    out = {}
    for fam, f in fams.items():
        out[fam] = {"cases": f["cases"], "ok": f["ok"],
                    "geomean_ratio_fwd": geomean(f["ratios_fwd"]),
                    "geomean_ratio_fwd_bwd": geomean(f["ratios_fwd_bwd"])}
    allf = [p["ratio"] for r in cases for p in r["phases"].values() if p.get("ratio")]
    return {"families": out, "geomean_ratio_all": geomean(allf),
            "status_counts": {s: sum(r["status"] == s for r in cases)
                              for s in ("OK", "UNCHECKED", "WRONG", "ERROR")}}


# --------------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    """The 1-minute load average (other work on the machine skews CPU timings), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def git_info():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
        return {"commit": commit, "dirty": bool(dirty.strip())}
    except Exception:  # noqa: BLE001
        return {"commit": None, "dirty": None}


def versions():
    import numba  # noqa: PLC0415
    import torch  # noqa: PLC0415

    import minicnn  # noqa: PLC0415
    v = {"python": platform.python_version(), "numpy": np.__version__,
         "numba": numba.__version__, "torch": torch.__version__,
         "minicnn": getattr(minicnn, "__version__", None), "cupy": None}
    if "cupy" in sys.modules or _cupy_importable():
        try:
            import cupy  # noqa: PLC0415
            v["cupy"] = cupy.__version__
        except Exception:  # noqa: BLE001
            pass
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        v["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}" if blas else None
    except Exception:  # noqa: BLE001
        v["numpy_blas"] = None
    return v


def _cupy_importable():
    import importlib.util  # noqa: PLC0415
    return importlib.util.find_spec("cupy") is not None


def device_info(device):
    info = {"kind": device, "cpu_model": cpu_model(),
            "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "platform": platform.platform()}
    if device == "cuda":
        import cupy  # noqa: PLC0415
        import torch  # noqa: PLC0415
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        info["name"] = name.decode() if isinstance(name, bytes) else str(name)
        info["gpu_memory_bytes"] = int(props.get("totalGlobalMem", 0))
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cudnn"] = torch.backends.cudnn.version()
        info["torch_device_name"] = torch.cuda.get_device_name()
    else:
        info["name"] = info["cpu_model"]
    return info


def slug(device, name):
    s = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$|\bprocessor\b", " ", name.lower())
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return f"{device}-{s}" if s else device
