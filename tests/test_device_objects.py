"""PyTorch's device idioms: mc.device, mc.accelerator, mc.backends.cudnn, mc.set_num_threads."""
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:0",), ("cuda", 0), ("cuda:1",),
                                  ("cpu", 0)])
def test_device_is_torch_device(args):
    d, t = mc.device(*args), torch.device(*args)
    assert (d.type, d.index, str(d), repr(d)) == (t.type, t.index, str(t), repr(t))
    assert mc.device(d) == d and hash(mc.device(*args)) == hash(d)
    assert pickle.loads(pickle.dumps(d)) == d
    assert isinstance(d, mc.device)


def test_device_equality_is_torchs():
    for a, b in [("cpu", "cpu"), ("cuda", "cuda:0"), ("cuda:0", "cuda:0"), ("cpu", "cuda")]:
        assert (mc.device(a) == mc.device(b)) == (torch.device(a) == torch.device(b))
        assert (mc.device(a) == b) == (torch.device(a) == b)        # False: devices are not strings
    assert mc.device("cpu").type == "cpu" and mc.device(0) == mc.device("cuda:0")
    with pytest.raises(AttributeError):
        mc.device("cpu").type = "cuda"


def test_device_errors():
    with pytest.raises(ValueError, match="unknown device type 'cud'"):
        mc.device("cud")
    with pytest.raises(ValueError, match="invalid device string"):
        mc.device("cuda:-1")
    with pytest.raises(ValueError, match="must not be negative"):
        mc.device("cuda", -1)
    with pytest.raises(ValueError, match="has an index already"):
        mc.device("cuda:0", 0)
    with pytest.raises(TypeError, match="expected a string"):
        mc.device(1.5)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        mc.tensor([1.0], device="gpu")
    with pytest.raises(ValueError, match="invalid device string"):
        mc.tensor([1.0], device="cpu:x")


def test_a_device_object_goes_where_a_device_string_goes(tmp_path):
    cpu = mc.device("cpu")
    t = mc.tensor([1.0, 2.0], device=cpu)
    assert t.device == "cpu"
    assert mc.zeros(2, device=cpu).device == "cpu" and mc.randn(2, device=cpu).shape == (2,)
    assert t.to(cpu) is t and t.to(cpu, mc.float64).dtype == np.float64
    model = nn.Linear(2, 1).to(cpu)
    mc.save(model.state_dict(), tmp_path / "m.mc")
    state = mc.load(tmp_path / "m.mc", map_location=cpu)
    assert state["weight"].device == "cpu"
    loader = mc.utils.data.DataLoader(mc.utils.data.TensorDataset(np.arange(3.0)), device=cpu)
    assert next(iter(loader))[0].device == "cpu"
    if not mc.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            t.to(mc.device("cuda:0"))


def test_accelerator_and_cudnn_switches():
    assert mc.accelerator.is_available() == mc.cuda.is_available()
    expected = mc.device("cuda") if mc.cuda.is_available() else None
    assert mc.accelerator.current_accelerator() == expected
    cudnn = mc.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic)
    assert before == (False, False) and cudnn.enabled is True
    try:
        cudnn.benchmark = True
        cudnn.deterministic = True
        assert (cudnn.benchmark, cudnn.deterministic) == (True, True)
        import minicnn.backends.cudnn as imported            # PyTorch's spelling
        assert imported is cudnn and imported.benchmark is True
        with pytest.raises(TypeError, match="True or False"):
            cudnn.benchmark = "yes"
        with pytest.raises(AttributeError, match="no setting 'benchmrk'"):
            cudnn.benchmrk = True
    finally:
        cudnn.benchmark, cudnn.deterministic = before


def _numba_threads_in_a_new_thread():
    import numba
    out = []
    t = threading.Thread(target=lambda: out.append(numba.get_num_threads()))
    t.start()
    t.join()
    return out[0]


def test_set_num_threads_sets_numba_and_the_blas():
    import numba
    from threadpoolctl import threadpool_info

    def blas():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    from minicnn import threads
    saved = (dict(threads._state), numba.get_num_threads(), max(blas()))
    try:
        mc.set_num_threads(1)
        assert mc.get_num_threads() == 1 and numba.get_num_threads() == 1 and blas() == {1}
        # a DataLoader worker thread runs on one thread too
        mc.set_num_threads(2)
        assert blas() == {2} and numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:                                   # back to this process's default
        state, numba_n, blas_n = saved
        mc.set_num_threads(blas_n)
        numba.set_num_threads(numba_n)
        threads._state.update(state)
    with pytest.raises(ValueError, match="positive"):
        mc.set_num_threads(0)
    with pytest.raises(TypeError, match="expected an int"):
        mc.set_num_threads(1.5)


_DEFAULT_PROBE = """
import sys
{first}
import minicnn, numba, os
from threadpoolctl import threadpool_info
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), numba.get_num_threads(), blas[0],
      minicnn.get_num_threads())
"""


@pytest.mark.parametrize("first", ["", "import numpy"])
@pytest.mark.parametrize("blas_env", [None, "2"])
def test_the_default_never_runs_both_pools_at_full_width(first, blas_env):
    """Numba on every core, the BLAS on one thread, whichever was imported first; OpenBLAS's
    idle workers told to sleep when minicnn loads it; OPENBLAS_NUM_THREADS wins."""
    env = {k: v for k, v in __import__("os").environ.items() if k not in (
        "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env["NUMBA_NUM_THREADS"] = "2"
    if blas_env:
        env["OPENBLAS_NUM_THREADS"] = blas_env
    out = subprocess.run([sys.executable, "-c", _DEFAULT_PROBE.format(first=first)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    timeout, numba_n, blas_n, reported = out[0], int(out[1]), int(out[2]), int(out[3])
    assert numba_n == reported == 2
    assert blas_n == (int(blas_env) if blas_env else 1)
    assert timeout == ("None" if first else "1")


def test_worker_threads_run_numba_on_one_thread():
    import numba
    numba.get_num_threads()                                     # loaded
    seen = []

    class Probe(mc.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            seen.append(numba.get_num_threads())
            return np.float32(i)

    list(mc.utils.data.DataLoader(Probe(), batch_size=1, num_workers=1))
    assert seen == [1, 1]


def test_format_a_0d_tensor_as_its_value():
    t = mc.tensor(3.14159)
    for spec in (".2f", ".3f", ">8.1f", "", "e"):
        assert format(t, spec) == format(torch.tensor(3.14159), spec)
    assert f"{mc.tensor(7):03d}" == "007"
    assert f"{mc.tensor([1.0, 2.0])}" == str(mc.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="unsupported format string"):
        format(mc.tensor([1.0, 2.0]), ".2f")


def test_to_non_blocking_and_copy():
    x = mc.randn(3, requires_grad=True)
    assert x.to("cpu", non_blocking=True) is x and x.cpu() is x
    assert x.to(mc.device("cpu"), mc.float32, True) is x               # to(device, dtype, flag)
    y = x.to("cpu", copy=True)
    assert y is not x and np.array_equal(y.numpy(), x.detach().numpy())
    y.sum().backward()                                                 # still differentiable
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))
    assert x.to(mc.float64, False, True).dtype == np.float64
    with pytest.raises(TypeError, match="at most two flags"):
        x.to(mc.float64, True, True, True)
    assert x.is_cpu and not x.is_xpu and not x.is_mps and not x.is_cuda
    model = nn.Linear(2, 2).to(mc.device("cpu"), non_blocking=True)
    assert model.weight.device == "cpu"
    if not mc.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            x.cuda(non_blocking=True)
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            x.to(0)


def test_data_parallel_runs_the_module_on_the_one_device():
    net = nn.Linear(3, 2)
    wrapped = nn.DataParallel(net)
    x = mc.randn(4, 3)
    np.testing.assert_array_equal(wrapped(x).detach().numpy(), net(x).detach().numpy())
    assert sorted(wrapped.state_dict()) == ["module.bias", "module.weight"]   # PyTorch's keys
    out = nn.parallel.data_parallel(net, x, range(1))
    assert out.shape == (4, 2)
    with pytest.raises(ValueError, match="one device"):
        nn.DataParallel(net, device_ids=[0, 1])
    with pytest.raises(TypeError, match="nn.Module"):
        nn.DataParallel(lambda v: v)
