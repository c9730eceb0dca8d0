"""End to end: one training step of ResNet-18 (CIFAR variant: 3x3 stem, no max pool) at 32x32,
SGD with momentum, minicnn against PyTorch with the same weights.

"fwd" is the forward pass in training mode (batch-norm batch statistics) returning the logits;
"fwd_bwd" is a whole training step: forward, cross-entropy, backward and an SGD(momentum=0.9,
weight_decay=5e-4) step, returning the gradients of the first step (the correctness gate
compares them with PyTorch's from the same weights and the same batch). The PyTorch model is
torchvision's ResNet-18 structure written out here (no torchvision needed), and minicnn's model
loads its state dict, which also checks that the parameter names match.

Sizes: batch 128 on the GPU (the design's reference: PyTorch 16.8 ms fp32 on an H100); batch 8
on the CPU; a smoke run (--quick) uses batch 2 and a quarter of the width.
"""
from bench.registry import Workload, case


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


@case("model", "resnet18_cifar_train_step", tags=("cpu", "gpu"),
      description="ResNet-18 CIFAR variant, 32x32, one SGD(momentum 0.9) training step; "
                  "batch 128 on GPU, 8 on CPU")
def resnet18_cifar_step(ctx):
    import minicnn as mc  # noqa: PLC0415
    import minicnn.functional as F  # noqa: PLC0415
    torch = ctx.torch
    n = ctx.by_device(cpu=8, gpu=128, quick=2)
    width = 16 if ctx.quick else 64
    classes = 10
    torch.manual_seed(0)
    tmodel = _torch_resnet18_cifar(torch, classes, width).to(ctx.device)
    mmodel = mc.models.resnet18_cifar(classes, width=width)
    mmodel.load_state_dict({k: v.detach().cpu().numpy() for k, v in tmodel.state_dict().items()})
    mmodel.to(ctx.device)
    tmodel.train()
    mmodel.train()
    xa = ctx.array((n, 3, 32, 32))
    ya = ctx.integers((n,), 0, classes)
    mx, my = ctx.mc(xa), ctx.mc(ya)
    tx, ty = ctx.th(xa), ctx.th(ya)
    kw = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    mopt = mc.optim.SGD(mmodel.parameters(), **kw)
    topt = torch.optim.SGD(tmodel.parameters(), **kw)
    flops = _forward_flops(mc, mmodel, mx)
    mparams = list(mmodel.parameters())
    tparams = list(tmodel.parameters())

    def mc_fwd():
        return mmodel(mx)

    def torch_fwd():
        return tmodel(tx)

    def mc_step():
        mopt.zero_grad()
        loss = F.cross_entropy(mmodel(mx), my)
        loss.backward()
        grads = [p.grad for p in mparams]
        mopt.step()
        return grads

    def torch_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        loss.backward()
        grads = [p.grad.clone() for p in tparams]
        topt.step()
        return grads

    # float32 through 20 layers with batch statistics: differences of a few 1e-4 are rounding
    return Workload(mc_fwd=mc_fwd, torch_fwd=torch_fwd, mc_fwd_bwd=mc_step,
                    torch_fwd_bwd=torch_step, flops=flops, flops_fwd_bwd=3 * flops,
                    atol=2e-3, rtol=1e-2,
                    extra={"batch": n, "width": width,
                           "params_M": round(mmodel.num_parameters() / 1e6, 2)})
