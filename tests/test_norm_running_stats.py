"""Running statistics over many steps against PyTorch's, in float64 (issue 23): an error as small
as instance norm keeping eps in its running variance (1e-6 relative at eps=1e-5) grows over the
steps and shows at this tolerance, where a float32 comparison at rtol 1e-5 cannot see it."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn

torch = pytest.importorskip("torch")

STEPS = 20
LAYERS = [("BatchNorm1d", (6, 3, 5)), ("BatchNorm2d", (4, 3, 5, 4)),
          ("InstanceNorm1d", (4, 3, 5)), ("InstanceNorm2d", (2, 3, 5, 4))]


@pytest.mark.parametrize("name,shape", LAYERS, ids=[n for n, _ in LAYERS])
@pytest.mark.parametrize("eps,momentum", [(1e-5, 0.1), (1e-3, 0.3), (0.5, None)])
def test_running_statistics_follow_pytorch(name, shape, eps, momentum):
    kw = {"eps": eps, "momentum": momentum, "affine": True, "track_running_stats": True}
    ours = getattr(nn, name)(shape[1], **kw).double()
    ref = getattr(torch.nn, name)(shape[1], **kw).double()
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        # a spread of scales: variances from about 1e-4 to 1e2, where eps matters at both ends
        x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 1) + rng.uniform(-3, 3)
        ours(mc.tensor(x))
        ref(torch.from_numpy(x))
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, key).numpy(), getattr(ref, key).numpy(),
                                   rtol=1e-12, atol=0, err_msg=key)
    # PyTorch's instance norm never counts its batches (and momentum=None is 0 there)
    assert int(ours.num_batches_tracked.item()) == int(ref.num_batches_tracked)
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours.eval()(mc.tensor(x)).numpy(),
                               ref.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-12,
                               atol=1e-12)
