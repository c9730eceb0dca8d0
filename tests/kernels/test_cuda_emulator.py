"""The CPU emulator of the CUDA kernels (kernels/cuda/emulator.py) and the launch checks.

Every CUDA kernel's test runs under this emulator on machines without a GPU, so the emulator
must itself be right: barriers, warp shuffles, shared memory, atomics, template instances, and
the errors for what is undefined on a GPU.
"""
from pathlib import Path

import numpy as np
import pytest

from minicnn.kernels.cuda import emulator, module

pytestmark = pytest.mark.skipif(not emulator.available(), reason="no C++ compiler")

SRC = Path(__file__).parents[1] / "cuda_src" / "emu_selftest.cu"


def k(name, dtype=None):
    return module.kernel(SRC, name, dtype)


def test_block_sum_over_blocks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    blocks = 4
    out = module.empty(np, (blocks,), np.float32)
    k("block_sum_kernel")((blocks,), (256,), (x, out, 1000))
    want = [x[b * 256:(b + 1) * 256].sum(dtype=np.float64) for b in range(blocks)]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_dynamic_shared_and_barrier():
    x = np.arange(3 * 96, dtype=np.int32)
    y = module.empty(np, x.shape, np.int32)
    k("reverse_block_kernel")((3,), (96,), (x, y), shared_mem=96 * 4)
    np.testing.assert_array_equal(y, x.reshape(3, 96)[:, ::-1].reshape(-1))


def test_warp_shuffles():
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, 64).astype(np.int32)
    outs = [module.empty(np, (64,), np.int32) for _ in range(4)]
    ballot = module.empty(np, (64,), np.uint32)
    k("shuffle_kernel")((1,), (64,), (x, *outs, ballot))
    down, up, xr, bcast = outs
    for i in range(64):
        w, lane = divmod(i, 32)
        src = lambda l: x[w * 32 + l]  # noqa: E731
        assert down[i] == (src(lane + 3) if lane + 3 < 32 else x[i])
        assert up[i] == (src(lane - 5) if lane >= 5 else x[i])
        assert xr[i] == src(lane ^ 6)
        assert bcast[i] == src(7)
        assert ballot[i] == sum(1 << l for l in range(32) if src(l) > 0)


def test_atomics_histogram():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 7, 500).astype(np.int32)
    hist = np.zeros(7, np.int32)
    k("histogram_kernel")((3,), (64,), (x, hist, x.size))
    np.testing.assert_array_equal(hist, np.bincount(x, minlength=7))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_template_instances_and_scalar_casts(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(77).astype(dtype)
    y = rng.standard_normal(77).astype(dtype)
    want = y + 2.5 * x
    k("axpy_kernel", dtype)((2,), (32,), (x, y, 2.5, 77))  # Python scalars cast to T, long long
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_barrier_after_early_exit_is_an_error():
    y = module.empty(np, (32,), np.float32)
    with pytest.raises(RuntimeError, match="__syncthreads"):
        k("early_exit_barrier_kernel")((1,), (32,), (y,))


def test_write_out_of_bounds_is_caught_by_the_guards():
    y = module.empty(np, (40,), np.float32)
    with pytest.raises(RuntimeError, match="wrote outside"):
        k("out_of_bounds_kernel")((1,), (64,), (y, 40))


def test_outputs_start_poisoned():
    assert np.isnan(module.empty(np, (5, 3), np.float32)).all()


def test_philox_known_answers():
    # Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors).
    cases = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
             ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
             ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
              (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in cases:
        out = module.empty(np, (4,), np.uint32)
        k("philox_kernel")((1,), (1,), (out, np.array(ctr, np.uint32), *key))
        assert tuple(int(v) for v in out) == want


def test_blocks_run_in_no_fixed_order():
    """A GPU promises no block order; the emulator shuffles it, so code relying on one fails."""
    order = module.empty(np, (16,), np.int32)
    counter = np.zeros(1, np.int32)
    k("block_order_kernel")((16,), (32,), (order, counter))
    assert sorted(order) == list(range(16)) and list(order) != list(range(16))


def test_a_missing_barrier_shows():
    """Threads run in a random order between barriers, so reading another thread's write of the
    same phase gives stale values for some threads (here: without the barrier that
    test_dynamic_shared_and_barrier has)."""
    x = np.arange(1, 65, dtype=np.int32) * 7
    y = module.empty(np, (64,), np.int32)
    k("missing_barrier_kernel")((1,), (64,), (x, y))
    assert (y != np.roll(x, -1)).any()


def test_scalar_casts_keep_the_sign_of_zero():
    out = [module._scalar(np.float32, v) for v in (0.0, -0.0, 0.0, -0.0)]
    assert [np.signbit(v) for v in out] == [False, True, False, True]
    assert module._scalar(np.int32, 7) is module._scalar(np.int32, 7)  # ints are memoised


def test_size_limit_leaves_room_for_a_grid_stride():
    module.check_size("op", (module.MAX_ELEMENTS,))
    with pytest.raises(ValueError, match="op: .* 32-bit integers"):
        module.check_size("op", (2, module.MAX_ELEMENTS // 2 + 1))


def test_index_past_a_shared_tile_aborts():
    """UBSan's bounds check (when the compiler has it) stops the process with the .cu line."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    if emulator.SANITIZE[0] not in emulator._flags("g++"):
        pytest.skip("the compiler has no UBSan runtime")
    code = (f"import numpy as np; from pathlib import Path; from minicnn.kernels.cuda import module;"
            f"x = np.ones(32, np.float32); y = module.empty(np, (1,), np.float32);"
            f"module.kernel(Path({str(SRC)!r}), 'shared_overrun_kernel')((1,), (32,), (x, y, 40))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "emu_selftest.cu" in proc.stderr and "out of bounds" in proc.stderr


def test_launch_checks_arguments():
    x = np.zeros(8, np.float32)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        k("block_sum_kernel")((1,), (32,), (x, x))
    with pytest.raises(TypeError, match="must be float32"):
        k("block_sum_kernel")((1,), (32,), (x.astype(np.float64), x, 8))
    with pytest.raises(ValueError, match="C-contiguous"):
        k("block_sum_kernel")((1,), (32,), (np.zeros(16, np.float32)[::2], x, 8))
    with pytest.raises(OverflowError):
        k("block_sum_kernel")((1,), (32,), (x, x, 2**40))
    with pytest.raises(TypeError, match="no instance"):
        k("axpy_kernel", np.int32)


def test_emulate_cuda_switch():
    from minicnn import devices
    x = np.ones(3)
    assert not devices.on_cuda_kernels(x)
    with pytest.raises(KeyError):
        with devices.emulate_cuda():
            assert devices.on_cuda_kernels(x)
            raise KeyError  # the switch is restored on the way out of an error
    assert not devices.on_cuda_kernels(x)
