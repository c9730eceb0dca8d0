"""mc.from_numpy shares memory with its array until an optimizer takes the tensor as a parameter
(issue 23): the optimizer moves the values into its flat buffer, as from_numpy's docstring says.
This pins the documented behaviour, so that a change to it changes the docstring too."""
import numpy as np

import minicnn as mc


def test_from_numpy_shares_memory_until_an_optimizer_is_built():
    a = np.ones(3, np.float32)
    t = mc.from_numpy(a).requires_grad_(True)
    a[0] = 5.0
    assert t.tolist() == [5.0, 1.0, 1.0]                    # shared
    opt = mc.optim.SGD([t], lr=0.1)
    assert not np.shares_memory(a, t.array)                 # moved into the flat buffer
    (t * 2).sum().backward()
    opt.step()
    np.testing.assert_allclose(t.detach().numpy(), [4.8, 0.8, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(a, [5.0, 1.0, 1.0])       # the array keeps its values
    assert "flat buffer" in mc.from_numpy.__doc__
