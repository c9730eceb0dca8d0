"""mc.viz: the DOT text of the autograd graph (ops, module paths, shapes, dtypes, parameters by
their state-dict names) and its drawing with Graphviz."""
import re
import shutil

import pytest

import minicnn as mc
from minicnn import nn
from minicnn import viz


def _parse(dot):
    """{node id: label} and [(from, to)] of the DOT text to_dot writes."""
    nodes = dict(re.findall(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M))
    edges = re.findall(r"^  (n\d+) -> (n\d+);$", dot, re.M)
    return {k: re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
            for k, v in nodes.items()}, edges


def test_lenet5_dot_names_ops_modules_shapes_and_parameters():
    mc.manual_seed(0)
    model = mc.models.lenet5(num_classes=10, image_size=16).train()
    dot = viz.to_dot(model, mc.randn(2, 1, 16, 16))
    assert dot.startswith('digraph "minicnn" {') and dot.rstrip().endswith("}")
    nodes, edges = _parse(dot)
    labels = list(nodes.values())
    # every parameter, under its state-dict name with its shape and dtype
    for key, t in model.state_dict().items():
        assert f"{key}\n{tuple(t.shape)} float32" in labels
    assert labels.count("Conv2d\nfeatures.0\n(2, 6, 16, 16) float32") == 1
    assert "Conv2d\nfeatures.3\n(2, 16, 4, 4) float32" in labels
    assert sum(v.startswith("LinearOp\nclassifier.") for v in labels) == 3
    assert sum(v.startswith("Activation[relu]") for v in labels) == 4
    assert "input\n(2, 1, 16, 16) float32" in labels and "output\n(2, 10) float32" in labels
    by_label = {v: k for k, v in nodes.items()}
    conv = by_label["Conv2d\nfeatures.0\n(2, 6, 16, 16) float32"]
    into_conv = {nodes[a].split("\n")[0] for a, b in edges if b == conv}
    assert into_conv == {"input", "features.0.weight", "features.0.bias"}
    # 12 ops (boxes): 2 convs, 4 ReLUs, 2 max pools, the flatten, 3 linears
    assert len(re.findall(r"^  n\d+ \[label=.*, shape=box,", dot, re.M)) == 12
    assert all(a in nodes and b in nodes for a, b in edges)
    assert model.training          # its mode is put back


def test_tensor_graph_with_named_params_and_quoting():
    w = mc.randn(3, 2, requires_grad=True)
    x = mc.randn(4, 3)
    loss = (x @ w).relu().sum()
    dot = viz.to_dot(loss, params={'the "w"': w})
    nodes, edges = _parse(dot)
    assert 'the \\"w\\"' in dot
    labels = set(nodes.values())
    assert 'the "w"\n(3, 2) float32' in labels
    assert "constant\n(4, 3) float32" in labels
    assert {"MatMul\n(4, 2) float32", "Activation[relu]\n(4, 2) float32",
            "Sum\n() float32", "output\n() float32"} <= labels
    assert len(edges) == 5


def test_to_dot_needs_an_example_input_for_a_model():
    with pytest.raises(TypeError, match="example input"):
        viz.to_dot(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expected a Tensor or a model"):
        viz.to_dot(3)


def test_render_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz's `dot` program was not found.*apt-get "
                                           "install graphviz"):
        viz.render("digraph g { a -> b; }", tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_lenet5_renders_to_svg_and_png(tmp_path):
    dot = viz.to_dot(mc.models.lenet5(image_size=16), mc.randn(1, 1, 16, 16))
    svg = viz.render(dot, tmp_path / "lenet.svg")
    text = open(svg).read()
    assert "<svg" in text and "features.0.weight" in text
    png = viz.render(dot, tmp_path / "lenet.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RuntimeError, match="dot -Tnotaformat failed"):
        viz.render(dot, tmp_path / "x.notaformat")
