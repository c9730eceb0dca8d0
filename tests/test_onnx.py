"""mc.onnx.export: every zoo model and every exportable layer passes onnx.checker and gives
minicnn's outputs under onnxruntime at two batch sizes; what cannot be exported is refused with
the op, the module and the reason. Skipped without the `[onnx]` extra (onnx, onnxruntime)."""
import subprocess
import sys

import numpy as np
import pytest

import minicnn as mc
import minicnn.nn.functional as F
from minicnn import nn
from minicnn.autograd.function import Function
from minicnn.models import MODELS, get_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from minicnn.onnx import ExportError, export  # noqa: E402

# every zoo model, small enough for CI (the op set is the published models'; vgg11 keeps the
# 7x7 adaptive pool over a 1x1 feature map, which becomes a MatMul with the averaging matrices)
ZOO = {
    "lenet5": (dict(num_classes=10, image_size=16), (1, 16, 16)),
    "simple_cnn": (dict(num_classes=10, image_size=12), (1, 12, 12)),
    "vgg11": (dict(num_classes=5, width_mult=1 / 16), (3, 32, 32)),
    "vgg11_bn": (dict(num_classes=5, small_input=True, width_mult=1 / 16), (3, 32, 32)),
    "vgg16": (dict(num_classes=5, small_input=True, width_mult=1 / 16), (3, 32, 32)),
    "vgg16_bn": (dict(num_classes=5, small_input=True, width_mult=1 / 16), (3, 32, 32)),
    "resnet18": (dict(num_classes=5, width=8), (3, 32, 32)),
    "resnet34": (dict(num_classes=5, width=8), (3, 32, 32)),
    "resnet50": (dict(num_classes=5, width=8), (3, 32, 32)),
    "resnet18_cifar": (dict(num_classes=5, width=8), (3, 16, 16)),
    "resnet34_cifar": (dict(num_classes=5, width=8), (3, 16, 16)),
    "densenet_small": (dict(num_classes=5), (3, 16, 16)),
    "densenet121": (dict(num_classes=5), (3, 32, 32)),
}


def _randomize(model, seed=0):
    """Batch norms with statistics and affine parameters that are not the identity."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.running_mean.array[...] = rng.normal(0, 0.2, C)
            m.running_var.array[...] = rng.uniform(0.5, 2, C)
            m.weight.array[...] = rng.normal(1, 0.2, C)
            m.bias.array[...] = rng.normal(0, 0.2, C)
    return model.eval()


def _run(path_or_proto, x, name="input"):
    data = path_or_proto if isinstance(path_or_proto, str) else \
        path_or_proto.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x})


def _reference(model, x):
    with mc.no_grad():
        return model(mc.tensor(x)).array


def _assert_parity(model, proto, shape, batches=(1, 3), seed=1):
    rng = np.random.default_rng(seed)
    for b in batches:
        x = rng.standard_normal((b, *shape)).astype(np.float32)
        ref = _reference(model, x)
        (got,) = _run(proto, x)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def test_every_zoo_model_has_a_config_here():
    assert set(ZOO) == set(MODELS)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_exports_and_matches_onnxruntime(name, tmp_path):
    kwargs, shape = ZOO[name]
    mc.manual_seed(0)
    model = _randomize(get_model(name, **kwargs))
    path = tmp_path / f"{name}.onnx"
    proto = export(model, mc.randn(2, *shape), path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    _assert_parity(model, str(path), shape)
    # parameters and buffers are initializers under their state-dict names, with their values
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    state = model.state_dict()
    named = [k for k in inits if k in state]
    assert named and all(np.array_equal(inits[k], state[k].array) for k in named)
    assert {k for k in state if not k.endswith("num_batches_tracked")} <= set(inits)
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


def test_fold_batchnorm_folds_and_keeps_the_outputs(tmp_path):
    model = _randomize(mc.models.resnet18_cifar(num_classes=5, width=8))
    proto = export(model, mc.randn(2, 3, 16, 16), fold_batchnorm=True)
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    _assert_parity(model, proto, (3, 16, 16))
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())   # a copy was folded


def test_export_leaves_the_model_and_minicnn_as_they_were():
    model = mc.models.simple_cnn(image_size=8).train()
    before = {k: v.array.copy() for k, v in model.state_dict().items()}
    plain = Function.__call__
    export(model, mc.randn(2, 1, 8, 8))
    assert model.training and Function.__call__ is plain
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(np.array_equal(before[k], v.array) for k, v in model.state_dict().items())


# --- layers and functional ops -------------------------------------------------------------------

class Fn(nn.Module):
    def __init__(self, f, *layers):
        super().__init__()
        self.f = f
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        return self.f(x, *self.layers)


LAYERS = {
    "conv_groups_dilation": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2,
                                               groups=2), (4, 9, 9)),
    "conv_depthwise_no_bias": (lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),
                               (4, 7, 7)),
    "conv_same_even_kernel": (lambda: nn.Conv2d(3, 5, 4, padding="same"), (3, 7, 7)),
    "conv_reflect": (lambda: nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), (3, 6, 6)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                  output_padding=1, groups=2), (4, 5, 5)),
    "conv_transpose_dilation": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=1, dilation=2),
                                (3, 5, 5)),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=1), (3, 10)),
    "maxpool_pad_dilation": (lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=2),
                             (2, 11, 11)),
    "maxpool_ceil": (lambda: nn.MaxPool2d(2, ceil_mode=True), (2, 7, 7)),
    "avgpool_include_pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 8, 8)),
    "avgpool_exclude_pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1,
                                                 count_include_pad=False), (2, 8, 8)),
    "avgpool_ceil": (lambda: nn.AvgPool2d(2, ceil_mode=True), (2, 7, 7)),
    "avgpool_divisor": (lambda: nn.AvgPool2d(2, divisor_override=3), (2, 6, 6)),
    "adaptive_avg_divisible": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 4, 6)),
    "adaptive_avg_uneven": (lambda: nn.AdaptiveAvgPool2d(3), (2, 5, 7)),
    "adaptive_max_global": (lambda: nn.AdaptiveMaxPool2d(1), (2, 5, 5)),
    "adaptive_max_divisible": (lambda: nn.AdaptiveMaxPool2d(2), (2, 4, 6)),
    "global_avg": (lambda: nn.GlobalAvgPool2d(), (2, 5, 5)),
    "batchnorm1d": (lambda: nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12)), (3, 2, 2)),
    "linear_3d": (lambda: nn.Linear(5, 3), (4, 5)),
    "flatten_unflatten": (lambda: nn.Sequential(nn.Flatten(), nn.Unflatten(1, (6, 2))),
                          (3, 2, 2)),
    "dropout_identity": (lambda: nn.Sequential(nn.Dropout(0.5), nn.Identity(), nn.Dropout2d()),
                         (2, 3, 3)),
}
ACTIVATIONS = {
    "relu": nn.ReLU(), "relu6": nn.ReLU6(), "leaky_relu": nn.LeakyReLU(0.2), "elu": nn.ELU(0.7),
    "selu": nn.SELU(), "celu": nn.CELU(1.5), "gelu": nn.GELU(), "gelu_tanh": nn.GELU("tanh"),
    "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "silu": nn.SiLU(), "mish": nn.Mish(),
    "hardswish": nn.Hardswish(), "hardsigmoid": nn.Hardsigmoid(), "hardtanh": nn.Hardtanh(-2, 1),
    "softplus": nn.Softplus(), "softplus_beta": nn.Softplus(beta=2.0), "softsign": nn.Softsign(),
    "prelu": nn.PReLU(3), "softmax": nn.Softmax(dim=1), "log_softmax": nn.LogSoftmax(dim=-1),
}
FUNCTIONAL = {
    "add_mul_sub_div": lambda x: (x + 1.5) * x - x / 2.0,
    "pow_exp_log_sqrt_abs": lambda x: (x ** 2 + 1).sqrt() + (x.abs() + 1).log() + (-x).exp(),
    "maximum_clamp": lambda x: mc.maximum(x, x * 0.5) + x.clamp(-0.5, 0.7),
    "concat_split": lambda x: mc.cat(list(mc.split(x, [1, 2], dim=1))[::-1] + [x], dim=1),
    "mean_sum_amax": lambda x: x.mean(dim=(2, 3), keepdim=True) + x.sum(dim=1, keepdim=True)
    + x.amax(dim=-1, keepdim=True),
    "permute_reshape": lambda x: x.permute(0, 2, 3, 1).reshape(x.shape[0], -1),
    "bias_act": lambda x: F.bias_act(x, mc.arange(3, dtype=mc.float32) / 3, "silu"),
    "matmul_const": lambda x: x @ mc.ones(4, 2),
    "expand": lambda x: x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1) * x,
    "pad": lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_exports_and_matches_onnxruntime(name):
    make, shape = LAYERS[name]
    mc.manual_seed(0)
    layer = make()
    model = _randomize(nn.Sequential(layer))
    for m in model.modules():            # BatchNorm1d too
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.array[...] = np.linspace(-1, 1, m.num_features)
            m.running_var.array[...] = np.linspace(0.5, 2, m.num_features)
    _assert_parity(model, export(model, mc.randn(2, *shape)), shape)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_exports_and_matches_onnxruntime(name):
    model = nn.Sequential(ACTIVATIONS[name]).eval()
    _assert_parity(model, export(model, mc.randn(2, 3, 4, 4) * 3), (3, 4, 4))


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_op_exports_and_matches_onnxruntime(name):
    model = Fn(lambda x: FUNCTIONAL[name](x))
    _assert_parity(model, export(model, mc.randn(2, 3, 4, 4)), (3, 4, 4))


def test_gelu_is_onnx_gelu_from_opset_20():
    model = nn.Sequential(nn.GELU()).eval()
    newest = onnx.defs.onnx_opset_version()
    if newest < 20:
        pytest.skip("this onnx knows no opset 20")
    proto = export(model, mc.randn(2, 3), opset_version=20)
    assert [n.op_type for n in proto.graph.node] == ["Gelu"]
    _assert_parity(model, proto, (3,))
    assert "Erf" in {n.op_type for n in export(model, mc.randn(2, 3)).graph.node}


def test_static_batch_and_names():
    class TwoOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, a, b):
            return self.fc(a) + b, a

    model = TwoOut()
    a, b = mc.randn(4, 3), mc.randn(4, 2)
    proto = export(model, (a, b), dynamic_batch=False, input_names=["a", "b"],
                   output_names=["y", "same_a"])
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["y", "same_a"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y, same = sess.run(None, {"a": a.array, "b": b.array})
    np.testing.assert_allclose(y, model(a, b)[0].array, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(same, a.array)
    with pytest.raises(ValueError, match="2 distinct output name"):
        export(model, (a, b), output_names=["y"])


# --- refusals ------------------------------------------------------------------------------------

def test_an_op_without_converter_is_named_with_its_module(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm([4, 2, 2]))
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"cannot export RowNorm \(called in module '1'\): no "
                                          "ONNX converter"):
        export(model, mc.randn(2, 3, 4, 4), path)
    assert not path.exists()


def test_a_value_computed_outside_the_graph_is_refused():
    def f(x):
        with mc.no_grad():
            s = x * 2.0          # follows the input, but is not in the recorded graph
        return x + s

    with pytest.raises(ExportError, match=r"Mul \(in the model's own forward\) computed a "
                                          r"float32 array of shape \[2, 3\].* reaches Add"):
        export(Fn(lambda x: f(x)), mc.randn(2, 3))


def test_unexpressible_cases_are_refused_with_the_reason():
    with pytest.raises(ExportError, match="AdaptiveMaxPool2d .*windows of different sizes"):
        export(nn.Sequential(nn.AdaptiveMaxPool2d(3)), mc.randn(1, 2, 5, 5))
    moves_batch = Fn(lambda x: x.reshape(1, -1))
    with pytest.raises(ExportError, match=r"Reshape .*moves the batch dimension.*"
                                          "dynamic_batch=False"):
        export(moves_batch, mc.randn(2, 3))
    proto = export(moves_batch, mc.randn(2, 3), dynamic_batch=False)
    (got,) = _run(proto, np.ones((2, 3), np.float32))
    assert got.shape == (1, 6)
    with pytest.raises(ExportError, match="dropout in training mode"):
        export(Fn(lambda x: F.dropout(x, 0.5, training=True)), mc.randn(2, 3))
    with pytest.raises(ValueError, match="opset_version must be between 13"):
        export(nn.Sequential(nn.ReLU()), mc.randn(2, 3), opset_version=11)


def test_minicnn_imports_no_onnx_and_says_how_to_get_it():
    code = ("import sys, minicnn, minicnn.onnx, minicnn.profiler, minicnn.viz\n"
            "assert not {'onnx', 'onnxruntime', 'safetensors', 'matplotlib'} & set(sys.modules)\n"
            "sys.modules['onnx'] = None\n"
            "try:\n"
            "    minicnn.onnx.export(minicnn.nn.ReLU(), minicnn.randn(2))\n"
            "except ImportError as e:\n"
            "    assert \"pip install 'minicnn[onnx]'\" in str(e), e\n"
            "else:\n"
            "    raise AssertionError('no ImportError')\n")
    subprocess.run([sys.executable, "-c", code], check=True)
