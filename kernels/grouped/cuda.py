"""The depthwise / grouped family on the GPU: launch functions of grouped.cu, with the signatures
of the family's API (kernels/grouped/__init__.py):

    depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None)      -> y  (N, K, OH, OW)
    depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW)         -> gx (N, C, H, W)
    depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW)         -> gw (K, 1, KH, KW)
    grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None)      -> y  (N, K, OH, OW)
    grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW)        -> gx (N, C, H, W)
    grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW)        -> gw (K, C/G, KH, KW)

Depthwise (w (C*M, 1, KH, KW)) is the grouped case G = C. Any kernel size, stride, padding and
dilation; gy may be smaller than the full output (a transposed conv's output_padding), and the
grad-input gather handles any (H, W). No host synchronization anywhere.

float16 / bfloat16 (half.cuh): every kernel has half instances, which load half, multiply and
sum in float32 and round each result once. The band kernels stage their tiles in shared memory
widened to float32 (so their plans take acc_t's itemsize, 4), and the weight gradient's
partial sums over slices of positions stay float32 until the final sum.
"""
import functools

from minicnn.devices import get_array_module

from ..cuda import module
from ..cuda.launch import acc_dtype, blocks, is_float, pow2ceil, warp_threads

FAMILY = "grouped"
BLOCK = 256
WAVES = 32                      # grid-stride loops: at most this many blocks per SM
WG_TARGET_BLOCKS = 2048         # weight grad: about this many (pair, slice) blocks
WG_MIN_CHUNK = 1024             # ... but at least this many positions per slice
WG_MIN_BAND = 256               # ... and bands of at least this many positions (or whole images)
USE_BAND = True                 # the shared-memory band kernel where it fits (tests turn it off)
BAND_RX = 4                     # outputs per thread along ow (BAND_RX in grouped.cu)
BAND_KB = 8                     # output channels per band block (the input band is reused KB x)
BAND_SMEM = 48 * 1024           # dynamic shared memory without an opt-in
BAND_MIN_BLOCKS = 264           # fewer groups per block / more row bands below this many blocks
WG_STATIC_SMEM = 4096           # the weight-grad kernel's static shared memory (<= 9*32*8 + 1)


@functools.lru_cache(maxsize=1024)
def _pitch(WB, TX, SH, SW):
    """The shared-memory row pitch >= WB with the fewest bank conflicts (4-byte words) for a
    warp's read: TX lanes along a row (stride SW), 32/TX rows SH pitches apart."""
    if TX >= 32:
        return WB
    best = None
    for pitch in range(WB, WB + 32):
        banks = {}
        for l in range(32):
            addr = (l // TX) * SH * pitch + (l % TX) * SW
            banks.setdefault(addr % 32, set()).add(addr)
        worst = max(len(a) for a in banks.values())
        if best is None or worst < best[0]:
            best = (worst, pitch)
    return best[1]


def _band_plan(N, G, Cig, Cog, OH, OW, KH, KW, SH, SW, DH, DW, itemsize):
    """Launch parameters of grouped_band_fwd_kernel, or None where even a band of one row and
    a few columns would not fit its shared memory (then the one-thread-per-output kernels)."""
    if not USE_BAND:
        return None
    return _band_plan_cached(N, G, Cig, Cog, OH, OW, KH, KW, SH, SW, DH, DW, itemsize,
                             BAND_SMEM, BAND_MIN_BLOCKS)


@functools.lru_cache(maxsize=1024)   # Python time per launch matters on the GPU (a few us)
def _band_plan_cached(N, G, Cig, Cog, OH, OW, KH, KW, SH, SW, DH, DW, itemsize, smem_limit,
                      min_blocks):
    KB = min(Cog, BAND_KB)
    nkc = -(-Cog // KB)
    taps = KH * KW
    CB = OW                      # columns per tile: the full width unless it does not fit
    while True:
        TX = min(BLOCK, pow2ceil(-(-CB // BAND_RX)))
        nty_max = BLOCK // TX
        ctiles = -(-OW // CB)
        RB = min(OH, max(1, -(-2 * nty_max // KB)))      # about two (kb, row) passes per thread
        GB = 1
        if nkc == 1 and RB == OH:   # small planes: several groups per block fill the threads
            GB = max(1, min(G, 2 * nty_max // (KB * RB)))
            while GB > 1 and N * -(-G // GB) * ctiles < min_blocks:
                GB = -(-GB // 2)
        planes = N * -(-G // GB) * nkc
        if GB == 1 and planes * ctiles * -(-OH // RB) < min_blocks:
            RB = max(1, -(-OH // -(-min_blocks // (planes * ctiles))))
        WB = (CB - 1) * SW + (KW - 1) * DW + 1
        pitch = _pitch(WB, TX, SH, SW)

        def smem(gb, rb):
            HB = (rb - 1) * SH + (KH - 1) * DH + 1
            return gb * (KB * Cig * taps + Cig * HB * pitch) * itemsize, HB

        while GB > 1 and smem(GB, RB)[0] > smem_limit:
            GB = -(-GB // 2)
        while RB > 1 and smem(GB, RB)[0] > smem_limit:
            RB = -(-RB // 2)
        nbytes, HB = smem(GB, RB)
        if nbytes <= smem_limit:
            break
        if CB <= BAND_RX:
            return None
        CB = -(-CB // 2)
    planes = N * -(-G // GB) * nkc
    bands = -(-OH // RB)
    if bands > 65535 or ctiles > 65535:
        return None
    NTY = min(nty_max, -(-GB * KB * RB // max(1, 32 // TX)) * max(1, 32 // TX))
    return dict(TX=TX, KB=KB, GB=GB, RB=RB, HB=HB, WB=WB, CB=CB, pitch=pitch, threads=TX * NTY,
                grid=(planes, bands, ctiles), smem=nbytes)


def _band(x, w, b, y, flip, G, Cig, Cog, KH, KW, SH, SW, PH, PW, DH, DW, plan):
    N, Cin, H, W = x.shape
    _, Cout, OH, OW = y.shape
    module.kernel(FAMILY, "grouped_band_fwd_kernel", x.dtype)(
        plan["grid"], plan["threads"],
        (x, w, w if b is None else b, y, int(b is not None), int(flip), Cin, H, W, Cout, G, Cig,
         Cog, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, plan["KB"], plan["RB"], plan["HB"],
         plan["WB"], plan["pitch"], plan["TX"], plan["CB"], plan["GB"]),
        shared_mem=plan["smem"])


def _check(op, x, w, G, names=("input", "weight")):
    """4-D, both of one float dtype (float32, float64, float16 or bfloat16), w.shape[1]
    (output channels) a multiple of G."""
    a, b = names
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D {a} and a 4-D {b}, got {a} "
                         f"{tuple(x.shape)} and {b} {tuple(w.shape)}")
    if x.dtype != w.dtype or not is_float(x, half=True):
        raise TypeError(f"{op}: {a} ({x.dtype}) and {b} ({w.dtype}) must both be "
                        f"float32, float64, float16 or bfloat16")
    k = w.shape[1] if b == "grad_output" else w.shape[0]
    if G < 1 or k % G:
        raise ValueError(f"{op}: {b} {tuple(w.shape)} has {k} output channels, "
                         f"not a multiple of groups={G}")


def grouped_conv2d(x, w, G, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    op = "grouped_conv2d"
    _check(op, x, w, G)
    N, C, H, W = x.shape
    K, Cg, KH, KW = w.shape
    if C != G * Cg:
        raise ValueError(f"{op}: input {tuple(x.shape)} has {C} channels; weight "
                         f"{tuple(w.shape)} with groups={G} expects {G * Cg}")
    xp = get_array_module(x)
    has_bias = b is not None
    if has_bias:
        if tuple(b.shape) != (K,):
            raise ValueError(f"{op}: bias {tuple(b.shape)} must have shape ({K},)")
    module.check_size(op, x.shape, w.shape, (N, K, OH, OW))
    y = module.empty(xp, (N, K, OH, OW), x.dtype)
    if y.size == 0:
        return y
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    b = xp.ascontiguousarray(b, dtype=x.dtype) if has_bias else None
    plan = _band_plan(N, G, Cg, K // G, OH, OW, KH, KW, SH, SW, DH, DW,
                      acc_dtype(x.dtype).itemsize)
    if plan is not None:
        _band(x, w, b, y, False, G, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW, plan)
        return y
    if b is None:
        b = w                                           # an unread stand-in
    module.kernel(FAMILY, "grouped_fwd_kernel", x.dtype)(
        blocks(y.size, BLOCK, WAVES, like=x), BLOCK,
        (x, w, b, y, int(has_bias), C, H, W, K, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW,
         OH, OW, y.size))
    return y


def grouped_grad_input(gy, w, G, C, H, W, SH, SW, PH, PW, DH, DW):
    op = "grouped_grad_input"
    _check(op, gy, w, G, ("grad_output", "weight"))
    N, K, OH, OW = gy.shape
    _, Cg, KH, KW = w.shape
    if K != w.shape[0] or C != G * Cg:
        raise ValueError(f"{op}: grad_output {tuple(gy.shape)} and weight {tuple(w.shape)} "
                         f"do not match {C} input channels in {G} groups")
    xp = get_array_module(gy)
    module.check_size(op, gy.shape, w.shape, (N, C, H, W))
    gx = module.empty(xp, (N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    if gy.size == 0:
        gx[...] = 0
        return gx
    gy, w = xp.ascontiguousarray(gy), xp.ascontiguousarray(w)
    if SH == 1 and SW == 1:
        # stride 1: the forward of gy with w rotated, Kg in / Cg out per group, padding D(K-1)-P
        plan = _band_plan(N, G, K // G, Cg, H, W, KH, KW, 1, 1, DH, DW,
                          acc_dtype(gy.dtype).itemsize)
        if plan is not None:
            _band(gy, w, None, gx, True, G, K // G, Cg, KH, KW, 1, 1, (KH - 1) * DH - PH,
                  (KW - 1) * DW - PW, DH, DW, plan)
            return gx
    module.kernel(FAMILY, "grouped_input_bwd_kernel", gy.dtype)(
        blocks(gx.size, BLOCK, WAVES, like=gy), BLOCK,
        (gy, w, gx, C, H, W, K, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, gx.size))
    return gx


_counters = {}


def _counter_buffer(xp, like, n):
    """A uint32 array of >= n zeros, one per (device, stream), for the weight-grad band kernel:
    the last block of each (k, cg) pair resets its counter, so the buffer is all zeros again
    after each launch. Launches on one stream run in order; launches on two streams may run
    at the same time, so each stream has its own buffer (a shared one would mix their counts:
    no block or two blocks of a pair would see themselves last)."""
    stream = None if xp.__name__ == "numpy" else xp.cuda.get_current_stream().ptr
    key = (xp.__name__, getattr(getattr(like, "device", None), "id", None), stream)
    buf = _counters.get(key)
    if buf is None or buf.size < n:
        buf = _counters[key] = xp.zeros(max(n, 4096), xp.uint32)
    return buf


def _wg_split(P, pairs):
    """(S, chunk, block): S slices of `chunk` positions each for every (k, cg) pair."""
    S = max(1, min(-(-WG_TARGET_BLOCKS // pairs), -(-P // WG_MIN_CHUNK)))
    chunk = -(-P // S)
    S = -(-P // chunk)
    block = warp_threads(chunk, BLOCK)
    return S, chunk, block


@functools.lru_cache(maxsize=1024)
def _wg_band_plan_cached(N, pairs, OH, OW, KH, KW, SH, SW, DH, DW, itemsize, target, min_chunk,
                         min_band, smem_limit):
    TX = min(32, pow2ceil(OW))
    nty_max = BLOCK // TX
    s_want = -(-target // pairs)
    RB = OH
    if N < s_want:     # too few images to give every SM work: bands of rows too
        RB = max(min(OH, -(-min_band // OW)), -(-OH // -(-s_want // N)))
    WB = (OW - 1) * SW + (KW - 1) * DW + 1
    pitch = _pitch(WB, TX, SH, SW)

    def smem(rb):
        HB = (rb - 1) * SH + (KH - 1) * DH + 1
        return HB * pitch * itemsize, HB

    while RB > 1 and smem(RB)[0] > smem_limit:
        RB = -(-RB // 2)
    nbytes, HB = smem(RB)
    if nbytes > smem_limit:
        return None
    items = N * -(-OH // RB)
    S = max(1, min(s_want, items, -(-N * OH * OW // min_chunk)))
    ips = -(-items // S)
    S = -(-items // ips)
    NTY = min(nty_max, -(-RB // max(1, 32 // TX)) * max(1, 32 // TX))
    return dict(RB=RB, HB=HB, WB=WB, pitch=pitch, TX=TX, threads=TX * NTY, S=S, ips=ips,
                smem=nbytes)


def _wg_band_plan(N, pairs, OH, OW, KH, KW, SH, SW, DH, DW, itemsize):
    """Launch parameters of grouped_weight_band_bwd_kernel, or None (plain kernel)."""
    if not USE_BAND:
        return None
    return _wg_band_plan_cached(N, pairs, OH, OW, KH, KW, SH, SW, DH, DW, itemsize,
                                WG_TARGET_BLOCKS, WG_MIN_CHUNK, WG_MIN_BAND,
                                BAND_SMEM - WG_STATIC_SMEM)


def grouped_grad_weight(x, gy, G, KH, KW, SH, SW, PH, PW, DH, DW):
    op = "grouped_grad_weight"
    _check(op, x, gy, G, ("input", "grad_output"))
    N, C, H, W = x.shape
    _, K, OH, OW = gy.shape
    if gy.shape[0] != N or C % G:
        raise ValueError(f"{op}: input {tuple(x.shape)} and grad_output {tuple(gy.shape)} do "
                         f"not match (groups={G})")
    Cg = C // G
    xp = get_array_module(x)
    shape = (K, Cg, KH, KW)
    module.check_size(op, x.shape, gy.shape, shape)
    P, pairs, taps = N * OH * OW, K * Cg, KH * KW
    if pairs * taps == 0:
        return module.empty(xp, shape, x.dtype)
    if P == 0:
        return xp.zeros(shape, x.dtype)
    x, gy = xp.ascontiguousarray(x), xp.ascontiguousarray(gy)
    acc = acc_dtype(x.dtype)
    plan = _wg_band_plan(N, pairs, OH, OW, KH, KW, SH, SW, DH, DW, acc.itemsize)
    S = plan["S"] if plan is not None else _wg_split(P, pairs)[0]
    gw = module.empty(xp, shape, x.dtype)
    if S > 1:
        module.check_size(op, (pairs, S, taps))   # the partial sums, indexed in 32 bits too
    # the partial sums in acc_t (float32 for the half dtypes); with S == 1 the kernels write
    # gw directly and part is an unread stand-in
    part = xp.empty(0, acc) if S == 1 else module.empty(xp, (pairs, S, taps), acc)
    if plan is not None:
        module.kernel(FAMILY, "grouped_weight_band_bwd_kernel", x.dtype)(
            (pairs, S), plan["threads"],
            (x, gy, part, gw, _counter_buffer(xp, x, pairs), N, C, H, W, K, Cg, K // G, KH, KW,
             SH, SW, PH, PW, DH, DW, OH, OW, plan["RB"], plan["HB"], plan["WB"], plan["pitch"],
             plan["TX"], plan["ips"]),
            shared_mem=plan["smem"])
        return gw           # with S > 1 the kernel's last block per pair did the final sum
    else:
        S, chunk, block = _wg_split(P, pairs)
        module.kernel(FAMILY, "grouped_weight_bwd_kernel", x.dtype)(
            (pairs, S), block,
            (x, gy, part, gw, C, H, W, K, Cg, K // G, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, P,
             chunk))
    if S > 1:
        n = pairs * taps
        module.kernel(FAMILY, "grouped_weight_reduce_bwd_kernel", x.dtype)(
            blocks(n, BLOCK, WAVES, like=x), BLOCK, (part, gw, S, taps, n))
    return gw


# --- depthwise: the grouped kernels with G = C ------------------------------------------------

def _depthwise_check(op, C, w):
    if w.ndim != 4 or w.shape[1] != 1 or w.shape[0] % max(C, 1):
        raise ValueError(f"{op}: depthwise weight must be (C*M, 1, KH, KW) for C={C} "
                         f"channels, got {tuple(w.shape)}")


def depthwise_conv2d(x, w, SH, SW, PH, PW, DH, DW, OH, OW, b=None):
    C = x.shape[1] if x.ndim == 4 else 0
    _depthwise_check("depthwise_conv2d", C, w)
    return grouped_conv2d(x, w, C, SH, SW, PH, PW, DH, DW, OH, OW, b)


def depthwise_grad_input(gy, w, C, H, W, SH, SW, PH, PW, DH, DW):
    _depthwise_check("depthwise_grad_input", C, w)
    return grouped_grad_input(gy, w, C, C, H, W, SH, SW, PH, PW, DH, DW)


def depthwise_grad_weight(x, gy, KH, KW, SH, SW, PH, PW, DH, DW):
    C = x.shape[1] if x.ndim == 4 else 0
    if gy.ndim != 4 or C == 0 or gy.shape[1] % C:
        raise ValueError(f"depthwise_grad_weight: grad_output {tuple(gy.shape)} must have a "
                         f"multiple of the input's channels (input {tuple(x.shape)})")
    return grouped_grad_weight(x, gy, C, KH, KW, SH, SW, PH, PW, DH, DW)
