"""Writing results: the terminal table, the JSON file, the markdown table, plots, compare mode."""
import json
import math
import os


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def fmt_bytes(b):
    if b is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024


def _spread(p):
    """Relative inter-quartile range of the median, e.g. '±3%'."""
    if not p or "median_s" not in p:
        return ""
    return f" ±{(p['q3_s'] - p['q1_s']) / 2 / p['median_s'] * 100:.0f}%"


def _median(ph, side):
    """One side's median time of a phase (or None) with its spread, e.g. '1.2 ms ±3%'."""
    p = (ph or {}).get(side)
    return fmt_time((p or {}).get("median_s")) + _spread(p)


def _rate(ph, side="mc"):
    """('12.3 GFLOP/s', fraction of ceiling) for the phase, preferring FLOPs over bytes."""
    p = (ph or {}).get(side) or {}
    if "gflops" in p:
        g = p["gflops"]
        txt = f"{g / 1e3:.2f} TFLOP/s" if g >= 1000 else f"{g:.3g} GFLOP/s"
        return txt, p["frac_sgemm"]
    if "gbps" in p:
        g = p["gbps"]
        txt = f"{g / 1e3:.2f} TB/s" if g >= 1000 else f"{g:.3g} GB/s"
        return txt, p["frac_copy"]
    return "-", None


def rows(results):
    out = []
    for r in results["cases"]:
        f, b = r["phases"].get("fwd"), r["phases"].get("fwd_bwd")
        main = b if b and b.get("ratio") else f
        rate, frac = _rate(main)
        trate, tfrac = _rate(main, "torch")
        mem = r.get("memory") or {}
        first = (f or b or {}).get("mc") or {}
        out.append([
            r["key"], r["status"],
            _median(f, "mc"), _median(f, "torch"), fmt_ratio((f or {}).get("ratio")),
            _median(b, "mc"), _median(b, "torch"), fmt_ratio((b or {}).get("ratio")),
            rate, "-" if frac is None else f"{frac * 100:.1f}%",
            "-" if tfrac is None else f"{tfrac * 100:.1f}%",
            fmt_time(first.get("first_call_s")),
            f"{fmt_bytes(mem.get('mc_peak_bytes'))} / {fmt_bytes(mem.get('torch_peak_bytes'))}"
            + (f" (total {fmt_bytes(mem['mc_peak_total_bytes'])} / "
               f"{fmt_bytes(mem.get('torch_peak_total_bytes'))})"
               if mem.get("mc_peak_total_bytes") is not None else "")
            if mem.get("method") else "-",
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in (r.get("extra") or {}).items()) or "-",
        ])
    return out


HEADER = ["case", "status", "mc fwd", "torch fwd", "ratio", "mc fwd+bwd", "torch fwd+bwd",
          "ratio", "mc rate", "mc %ceil", "torch %ceil", "mc 1st call", "peak mem mc / torch",
          "extra"]


def table_text(results):
    body = rows(results)
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(HEADER), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    for r in results["cases"]:
        if r["status"] not in ("OK",) and r.get("message"):
            out.append(f"  {r['key']}: {r['status']}: {r['message']}")
    out.append("")
    out.append(summary_text(results))
    return "\n".join(out)


def summary_text(results):
    s = results["summary"]
    c = results["ceilings"]
    lines = [f"ceilings: SGEMM {c['sgemm_gflops']:.1f} GFLOP/s, copy {c['copy_gbps']:.1f} GB/s "
             f"({c['method']})",
             "geometric mean of minicnn/PyTorch time ratios per family (lower is better):"]
    for fam, f in s["families"].items():
        lines.append(f"  {fam:<12} fwd {fmt_ratio(f['geomean_ratio_fwd'])}  fwd+bwd "
                     f"{fmt_ratio(f['geomean_ratio_fwd_bwd'])}  ({f['ok']}/{f['cases']} ok)")
    lines.append(f"  all          {fmt_ratio(s['geomean_ratio_all'])}  statuses "
                 + ", ".join(f"{k} {v}" for k, v in s["status_counts"].items()))
    if results.get("import_errors"):
        for mod, e in results["import_errors"].items():
            lines.append(f"  bench/cases/{mod}.py failed to import: {e}")
    return "\n".join(lines)


def markdown(results):
    d, v, st, g = results["device"], results["versions"], results["settings"], results["git"]
    lines = [f"# minicnn vs PyTorch: {d['name']} ({d['kind']})", "",
             f"- date (UTC): {results['created']}",
             f"- CPU: {d['cpu_model']} ({d['cpu_count']} usable cores)",
             "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
             f"- git: {g['commit']}{' (dirty tree)' if g.get('dirty') else ''}",
             f"- settings: threads {st['threads']}, TF32 {'on' if st['tf32'] else 'off'}, "
             f"quick {st['quick']}, timer {st['timer']}, 1-min load average "
             f"{(st.get('load_average_1min') or {}).get('before')} before / "
             f"{(st.get('load_average_1min') or {}).get('after')} after",
             _blas_line(st.get("thread_pinning") or {}),
             f"- ceilings: SGEMM {results['ceilings']['sgemm_gflops']:.1f} GFLOP/s, copy "
             f"{results['ceilings']['copy_gbps']:.1f} GB/s", "",
             "Times are medians (± half the inter-quartile range, relative) of repeats after "
             "warm-up; ratio = minicnn / PyTorch (lower is better); rate and %ceil are for "
             "fwd+bwd when measured, else fwd.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows(results):
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |")
    lines += ["", "Geometric mean of ratios per family:", "",
              "| family | fwd | fwd+bwd | ok/cases |", "|---|---|---|---|"]
    for fam, f in results["summary"]["families"].items():
        lines.append(f"| {fam} | {fmt_ratio(f['geomean_ratio_fwd'])} | "
                     f"{fmt_ratio(f['geomean_ratio_fwd_bwd'])} | {f['ok']}/{f['cases']} |")
    bad = [r for r in results["cases"] if r["status"] != "OK" and r.get("message")]
    if bad:
        lines += ["", "Notes:", ""]
        lines += [f"- `{r['key']}` {r['status']}: {r['message']}" for r in bad]
    return "\n".join(lines) + "\n"


def write_all(results, out_dir, stem, plots=True):
    """results JSON + markdown (+ plots); returns the list of paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    jp = os.path.join(out_dir, stem + ".json")
    with open(jp, "w") as f:
        json.dump(results, f, indent=1, default=_json_default)
        f.write("\n")
    paths.append(jp)
    mp = os.path.join(out_dir, stem + ".md")
    with open(mp, "w") as f:
        f.write(markdown(results))
    paths.append(mp)
    if plots:
        paths += write_plots(results, out_dir, stem)
    return paths


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _save(plt, fig, path):
    """Lay out, write and close one figure; returns its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(results, out_dir, stem):
    """Two PNGs (ratio per case; achieved fraction of the ceiling); none without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        import matplotlib.ticker  # noqa: PLC0415, F401
    except Exception:  # noqa: BLE001
        results.setdefault("notes", []).append("plots skipped: matplotlib is not installed")
        return []
    cases = [r for r in results["cases"] if any(p.get("ratio") for p in r["phases"].values())]
    if not cases:
        return []
    paths = []
    labels = [r["key"] for r in cases]
    h = max(2.5, 0.35 * len(cases) + 1.2)
    fig, ax = plt.subplots(figsize=(8, h))
    ys = range(len(cases))
    allr = []
    for off, ph, color in ((-0.2, "fwd", "tab:blue"), (0.2, "fwd_bwd", "tab:orange")):
        vals = [(r["phases"].get(ph) or {}).get("ratio") for r in cases]
        yv = [(y + off, v) for y, v in zip(ys, vals) if v]
        allr += [v for _, v in yv]
        # bars grow from 1 (parity): left of the line minicnn is faster, right it is slower
        ax.barh([y for y, _ in yv], [v - 1 for _, v in yv], left=1, height=0.4, color=color,
                label=ph.replace("_", "+"))
        for y, v in yv:
            ax.annotate(f"{v:.2f}x", (v, y), va="center", fontsize=8,
                        xytext=(3 if v >= 1 else -3, 0), textcoords="offset points",
                        ha="left" if v >= 1 else "right")
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    lo, hi = min(0.25, min(allr) / 1.5), max(4.0, max(allr) * 1.5)
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4, 10, 30, 100, 300) if lo <= t <= hi]
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio minicnn / PyTorch (log; < 1 is faster)")
    ax.set_title(f"{results['device']['name']} ({results['device']['kind']})")
    ax.legend()
    paths.append(_save(plt, fig, os.path.join(out_dir, stem + "-ratio.png")))

    rated = []
    for r in cases:
        ph = r["phases"].get("fwd_bwd") or r["phases"].get("fwd")
        if ph and ph.get("mc") and ("frac_sgemm" in ph["mc"] or "frac_copy" in ph["mc"]):
            k = "frac_sgemm" if "frac_sgemm" in ph["mc"] else "frac_copy"
            rated.append((r["key"] + (" (FLOP)" if k == "frac_sgemm" else " (bytes)"),
                          ph["mc"][k], ph["torch"][k]))
    if rated:
        fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(rated) + 1.2)))
        ys = range(len(rated))
        ax.barh([y - 0.2 for y in ys], [x[1] * 100 for x in rated], height=0.4, label="minicnn")
        ax.barh([y + 0.2 for y in ys], [x[2] * 100 for x in rated], height=0.4, label="PyTorch")
        ax.axvline(100, color="k", lw=1)
        ax.set_yticks(list(ys), [x[0] for x in rated])
        ax.invert_yaxis()
        c = results["ceilings"]
        ax.set_xlabel(f"% of measured ceiling (SGEMM {c['sgemm_gflops']:.0f} GFLOP/s, "
                      f"copy {c['copy_gbps']:.0f} GB/s)")
        ax.legend()
        paths.append(_save(plt, fig, os.path.join(out_dir, stem + "-ceiling.png")))
    return paths


# --------------------------------------------------------------------------------------------
# compare mode
# --------------------------------------------------------------------------------------------

def compare_results(a, b, threshold=0.05):
    """Rows (key, phase, A median, B median, change, verdict, torch change) for cases in both.

    A change counts as faster/slower only beyond max(threshold, the two runs' relative IQRs)."""
    out = []
    bcases = {r["key"]: r for r in b["cases"]}
    for ra in a["cases"]:
        rb = bcases.get(ra["key"])
        if rb is None:
            out.append((ra["key"], "-", None, None, None, "only in A", None))
            continue
        for ph in ("fwd", "fwd_bwd"):
            pa, pb = ra["phases"].get(ph), rb["phases"].get(ph)
            if not pa or not pb:
                continue
            ma, mb = (pa.get("mc") or {}).get("median_s"), (pb.get("mc") or {}).get("median_s")
            if ma is None or mb is None:
                out.append((ra["key"], ph, ma, mb, None,
                            f"{pa['status']} -> {pb['status']}", None))
                continue
            change = mb / ma - 1
            noise = max(threshold, _rel_iqr(pa["mc"]), _rel_iqr(pb["mc"]))
            verdict = "faster" if change < -noise else "slower" if change > noise else "same"
            ta, tb = (pa.get("torch") or {}).get("median_s"), (pb.get("torch") or {}).get(
                "median_s")
            tchange = tb / ta - 1 if ta and tb else None
            out.append((ra["key"], ph, ma, mb, change, verdict, tchange))
    akeys = {r["key"] for r in a["cases"]}
    for rb in b["cases"]:
        if rb["key"] not in akeys:
            out.append((rb["key"], "-", None, None, None, "only in B", None))
    return out


def _rel_iqr(p):
    if "q1_s" not in p or not p.get("median_s"):
        return 0.0
    return (p["q3_s"] - p["q1_s"]) / p["median_s"]


def compare_text(a, b, rows_, a_name="A", b_name="B"):
    lines = [f"A: {a_name}  ({a['device']['name']}, {a['created']}, commit "
             f"{(a['git'].get('commit') or '?')[:10]})",
             f"B: {b_name}  ({b['device']['name']}, {b['created']}, commit "
             f"{(b['git'].get('commit') or '?')[:10]})"]
    if a["device"]["name"] != b["device"]["name"]:
        lines.append("warning: the two files come from different devices")
    for k in ("threads", "tf32", "quick"):
        va, vb = (a.get("settings") or {}).get(k), (b.get("settings") or {}).get(k)
        if va != vb:
            lines.append(f"warning: settings differ: {k} {va} (A) vs {vb} (B)")
    hdr = ["case", "phase", "minicnn A", "minicnn B", "change", "verdict", "torch change"]
    body = [[k, ph, fmt_time(ma), fmt_time(mb),
             "-" if ch is None else f"{ch * 100:+.1f}%", v,
             "-" if tc is None else f"{tc * 100:+.1f}%"] for k, ph, ma, mb, ch, v, tc in rows_]
    widths = [max(len(str(x)) for x in col) for col in zip(hdr, *body)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in body]
    n = {v: sum(r[5] == v for r in rows_) for v in ("faster", "slower", "same")}
    lines.append(f"{n['faster']} faster, {n['slower']} slower, {n['same']} within noise "
                 "(torch change shows drift of the machine between the runs)")
    return "\n".join(lines)


def isfinite(x):
    return x is not None and math.isfinite(x)


def blas_line(env, kernels):
    """The OpenBLAS kernel that ran and the variables that pick it: OPENBLAS_CORETYPE=Haswell
    runs the AVX2 kernels on an AVX-512 CPU, which moves the ratios to PyTorch 1.2-1.6x."""
    def value(k):
        if k not in env:
            return "not recorded"
        return "unset" if env[k] is None else env[k]
    named = ", ".join(f"{k}={value(k)}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    return f"- BLAS: {kernels or 'kernel not recorded'} ({named})"


def _blas_line(pinning):
    return blas_line(pinning.get("env") or {}, pinning.get("threadpoolctl"))


def blas_now():
    """blas_line for this process (the child processes of bench.alone and bench.distributed
    inherit its environment, and so pick the same kernel)."""
    import numpy  # noqa: PLC0415, F401 -- loads OpenBLAS, so that threadpoolctl sees it
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
        kernels = [f"{p.get('internal_api')} {p.get('architecture')}" for p in threadpool_info()
                   if p.get("internal_api") == "openblas"]
    except ImportError:
        kernels = None
    return blas_line(env, kernels)
