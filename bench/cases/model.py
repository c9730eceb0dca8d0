"""End to end: one training step of ResNet-18 (CIFAR variant: 3x3 stem, no max pool) at 32x32,
SGD with momentum, minicnn against PyTorch with the same weights.

"fwd" is the forward pass in training mode (batch-norm batch statistics) returning the logits;
"fwd_bwd" is a whole training step: forward, cross-entropy, backward and an SGD(momentum=0.9,
weight_decay=5e-4) step, returning the gradients of the first step (the correctness gate
compares them with PyTorch's from the same weights and the same batch). The PyTorch model is
torchvision's ResNet-18 structure written out here (no torchvision needed), and minicnn's model
loads its state dict, which also checks that the parameter names match.

The gate (a custom check) runs one step from the same weights three ways: minicnn float32,
PyTorch float32 and PyTorch float64, and requires, for the logits and every gradient, minicnn's
relative L2 error from the float64 result to be at most GATE (4) times PyTorch float32's plus
FLOOR (1e-2). Element-wise tolerances do not fit a float32 backward through 20 ReLU and
batch-norm layers: an activation within rounding of zero can land on the other side of the ReLU
in one implementation. Measured here (batch 8, width 64, input seed 2): minicnn's forward flips
exactly one ReLU at layer2.1.bn1's output, where the float64 activation is 2.1e-7; that moves
single elements of layer2.1.conv1.weight's gradient by 0.87% of the tensor's largest value
(PyTorch float32: 1.6e-6), while the tensor's relative L2 error stays 6.7e-4. With input seed 0
both float32 implementations are 18% (largest element) off on layer4.0.conv1.weight. A wrong
kernel gives relative L2 errors of order 1. Across input seeds, conv1.weight's gradient error
follows the number of flipped ReLUs (minicnn / PyTorch float32, relative L2 from float64): no flip
in either -> 1.2e-6 / 2.0e-6; 2 flips / 1 flip -> 3.9e-3 / 3.5e-3; 3 / 1 -> 3.4e-3 / 2.6e-3. So
FLOOR is 1e-2 (a few flips); minicnn's forward rounding flips a little more often than PyTorch's.

Sizes: batch 128 on the GPU (the design's reference: PyTorch 16.8 ms fp32 on an H100); batch 8
on the CPU, and batch 32 as its own CPU case; a smoke run (--quick) uses batch 2 and a quarter of
the width. Also: LeNet-5 at batch 64 (28x28; the same step, where each op's fixed cost rather
than arithmetic sets the time) and ResNet-18 inference (eval, no_grad) at batch 32, the rows of
issue 17's table.
"""
from ..registry import Workload, case

GATE = 4.0     # per tensor: minicnn's relative L2 error from float64 <= 4x PyTorch float32's
FLOOR = 1e-2   # ... plus this: each ReLU flipped by rounding moves conv1's gradient ~3e-3 (above)


def _torch_resnet18_cifar(torch, num_classes, width):
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.Identity()
            self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
            self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
            self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))
            self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w, 1))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8 * w, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def _forward_flops(mc, model, x):
    """Multiply-adds x 2 of every convolution and linear layer in one forward pass."""
    total = [0]
    hooks = []
    for m in model.modules():
        if isinstance(m, mc.nn.Conv2d):
            def conv_hook(mod, args, out):
                k, cg, kh, kw = mod.weight.shape
                total[0] += 2 * out.numel() * cg * kh * kw
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, mc.nn.Linear):
            def lin_hook(mod, args, out):
                total[0] += 2 * out.numel() * mod.weight.shape[1]
            hooks.append(m.register_forward_hook(lin_hook))
    with mc.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total[0]


def _torch_lenet5(torch, num_classes):
    """minicnn.models.LeNet5(image_size=28): the 28x28 version (first conv padded by 2)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
                      nn.ReLU(), nn.Linear(84, num_classes)))


def _models(ctx, name, width):
    """The same network and weights on both sides: (minicnn model, PyTorch model)."""
    import minicnn as mc  # noqa: PLC0415
    torch = ctx.torch
    torch.manual_seed(0)
    if name == "lenet5":
        tmodel = _torch_lenet5(torch, 10)
        mmodel = mc.models.LeNet5(10, image_size=28)
        state = dict(zip(mmodel.state_dict(), tmodel.state_dict().values()))   # same order
    else:
        tmodel = _torch_resnet18_cifar(torch, 10, width)
        mmodel = mc.models.resnet18_cifar(10, width=width)
        state = tmodel.state_dict()            # also checks that the parameter names match
    mmodel.load_state_dict({k: v.detach().cpu().numpy() for k, v in state.items()})
    return mmodel.to(ctx.device), tmodel.to(ctx.device)


def _train_step(ctx, name, n, width, autocast=None):
    """One SGD(momentum) training step of model `name` at batch n (see the module docstring).
    autocast: None (float32), or "bfloat16" / "float16" to run each side's forward and loss under
    its own autocast (mc.autocast, torch.autocast) on the case's device; the gate then measures
    both sides' autocast results against the same float64 reference."""
    import contextlib  # noqa: PLC0415

    import minicnn as mc  # noqa: PLC0415
    import minicnn.functional as F  # noqa: PLC0415
    torch = ctx.torch
    classes = 10
    mmodel, tmodel = _models(ctx, name, width)
    tmodel.train()
    mmodel.train()
    xa = ctx.array((n, 1, 28, 28) if name == "lenet5" else (n, 3, 32, 32))
    ya = ctx.integers((n,), 0, classes)
    mx, my = ctx.mc(xa), ctx.mc(ya)
    tx, ty = ctx.th(xa), ctx.th(ya)
    kw = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    mopt = mc.optim.SGD(mmodel.parameters(), **kw)
    topt = torch.optim.SGD(tmodel.parameters(), **kw)
    flops = _forward_flops(mc, mmodel, mx)
    mparams = list(mmodel.parameters())
    tparams = list(tmodel.parameters())
    if autocast is None:
        mc_cast = torch_cast = contextlib.nullcontext
    else:
        def mc_cast():
            return mc.autocast(ctx.device, dtype=getattr(mc, autocast))

        def torch_cast():
            return torch.autocast(ctx.device, dtype=getattr(torch, autocast))

    def mc_fwd():
        with mc_cast():
            return mmodel(mx)

    def torch_fwd():
        with torch_cast():
            return tmodel(tx)

    def mc_step():
        mopt.zero_grad()
        with mc_cast():
            loss = F.cross_entropy(mmodel(mx), my)
        loss.backward()
        grads = [p.grad for p in mparams]
        mopt.step()
        return grads

    def torch_step():
        topt.zero_grad()
        with torch_cast():
            loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        loss.backward()
        grads = [p.grad.clone() for p in tparams]
        topt.step()
        return grads

    def check():
        """Logits and every gradient of one step from the same weights, minicnn float32 and
        PyTorch float32 each measured against PyTorch float64 (see the module docstring)."""
        import copy  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415
        state = {k: v.detach().clone() for k, v in tmodel.state_dict().items()}
        mmodel.load_state_dict({k: v.cpu().numpy() for k, v in
                                zip(mmodel.state_dict(), state.values())})
        ref = copy.deepcopy(tmodel).double()
        ref.load_state_dict(state)
        sides = {}
        for p in mparams:
            p.grad = None
        with mc_cast():
            mout = mmodel(mx)
            mloss = F.cross_entropy(mout, my)
        mloss.backward()
        sides["mc"] = [mout.array] + [p.grad.array for p in mparams]
        for key, model, x, cast in (("torch", tmodel, tx, torch_cast),
                                    ("ref", ref, tx.double(), contextlib.nullcontext)):
            model.zero_grad()
            with cast():
                out = model(x)
                loss = torch.nn.functional.cross_entropy(out, ty)
            loss.backward()
            sides[key] = [out.detach()] + [p.grad for p in model.parameters()]
        names = ["logits"] + [n for n, _ in tmodel.named_parameters()]
        for i, name_ in enumerate(names):
            r = sides["ref"][i].detach().cpu().numpy()
            a = mc.devices.to_numpy(sides["mc"][i]).astype(np.float64)
            b = sides["torch"][i].detach().cpu().double().numpy()
            norm = float(np.linalg.norm(r)) + 1e-30
            e_mc = float(np.linalg.norm(a - r)) / norm
            e_th = float(np.linalg.norm(b - r)) / norm
            if not e_mc <= GATE * e_th + FLOOR:
                return (f"{name_}: minicnn's {autocast or 'float32'} result is {e_mc:.3g} "
                        f"(relative L2) from the float64 reference, PyTorch's {e_th:.3g} "
                        f"(allowed: {GATE}x PyTorch's + {FLOOR})")
        return None

    return Workload(mc_fwd=mc_fwd, torch_fwd=torch_fwd, mc_fwd_bwd=mc_step,
                    torch_fwd_bwd=torch_step, flops=flops, flops_fwd_bwd=3 * flops,
                    check=check,
                    extra={"batch": n, "width": width,
                           "params_M": round(mmodel.num_parameters() / 1e6, 2)})


@case("model", "resnet18_cifar_train_step", tags=("cpu", "gpu"),
      description="ResNet-18 CIFAR variant, 32x32, one SGD(momentum 0.9) training step; "
                  "batch 128 on GPU, 8 on CPU")
def resnet18_cifar_step(ctx):
    return _train_step(ctx, "resnet18_cifar", ctx.by_device(cpu=8, gpu=128, quick=2),
                       16 if ctx.quick else 64)


@case("model", "resnet18_cifar_train_step_b32", tags=("cpu",),
      description="the same step at batch 32 (issue 17's reference: PyTorch 345 ms on a quiet "
                  "2-core EPYC)")
def resnet18_cifar_step_b32(ctx):
    return _train_step(ctx, "resnet18_cifar", 2 if ctx.quick else 32, 16 if ctx.quick else 64)


@case("model", "lenet5_train_step_b64", tags=("cpu",),
      description="LeNet-5 (28x28, first conv padded), one SGD(momentum 0.9) training step at "
                  "batch 64: per-op overhead more than arithmetic")
def lenet5_step(ctx):
    return _train_step(ctx, "lenet5", 4 if ctx.quick else 64, None)


@case("model", "resnet18_cifar_inference_b32", tags=("cpu",),
      description="ResNet-18 CIFAR variant, eval mode, no_grad forward at batch 32")
def resnet18_cifar_inference(ctx):
    import minicnn as mc  # noqa: PLC0415
    n, width = (2, 16) if ctx.quick else (32, 64)
    mmodel, tmodel = _models(ctx, "resnet18_cifar", width)
    mmodel.eval()
    tmodel.eval()
    xa = ctx.array((n, 3, 32, 32))
    mx, tx = ctx.mc(xa), ctx.th(xa)

    def mc_fwd():
        with mc.no_grad():
            return mmodel(mx)

    def torch_fwd():
        with ctx.torch.no_grad():
            return tmodel(tx)

    return Workload(mc_fwd=mc_fwd, torch_fwd=torch_fwd, flops=_forward_flops(mc, mmodel, mx),
                    atol=1e-3, rtol=1e-3, extra={"batch": n, "width": width})
