"""The `programs` family of bench.alone: one training step of each of four real programs, the
minicnn programs of examples/ against the same programs in PyTorch.

    python -m bench.alone programs            # from the repository root (needs examples/)

The models are not copied: `example_defs` takes their classes from the examples' own source and
executes them in a namespace where `torch`, `nn` and `F` are one library or the other, so both
sides run the very code of examples/mnist.py, cifar10_tutorial.py, cifar_resnet.py and dcgan.py.
Each step below is the body of that program's training loop (the loss, backward, optimizer step
and the `.item()` bookkeeping it does every batch; not the data loading, printing or saving), on
fixed random data drawn once from NumPy, the same numbers on both sides:

- mnist:            PyTorch's MNIST example: conv 32, conv 64, max pool, dropout, fc 128, fc 10,
                    log-softmax + NLL loss, Adadelta (lr 1.0); batch 64 of 1x28x28.
- cifar10_tutorial: the "Training a Classifier" tutorial's CNN, cross-entropy, SGD lr 0.001
                    momentum 0.9; batch 4 of 3x32x32, as in the tutorial.
- cifar_resnet:     ResNet-18 for CIFAR (kuangliu/pytorch-cifar's, as examples/cifar_resnet.py
                    writes it), SGD lr 0.1 momentum 0.9 weight decay 5e-4; batch 128 of 3x32x32.
- dcgan:            PyTorch's DCGAN example at its default size (64x64 RGB, batch 64, nz 100,
                    ngf = ndf = 64): one discriminator step (real batch, fake batch) and one
                    generator step, BCE loss, Adam (lr 2e-4, betas (0.5, 0.999)).

`--quick` shrinks the batches (and DCGAN's widths) so that a step takes milliseconds.
"""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def example_defs(filename, names, **namespace):
    """The top-level classes/functions `names` of examples/<filename>, executed (nothing else of
    the script is) in a fresh namespace holding `namespace`: the module-level names they use,
    e.g. torch / nn / F bound to minicnn or to PyTorch. Returns them in the order of `names`."""
    path = os.path.join(EXAMPLES, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the programs family runs the examples' code and needs "
                                "a checkout of the repository")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    nodes = [n for n in tree.body
             if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in names]
    missing = set(names) - {n.name for n in nodes}
    if missing:
        raise LookupError(f"{path} defines no {', '.join(sorted(missing))}")
    ns = {"__name__": f"examples.{filename[:-3]}", **namespace}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), path, "exec"), ns)  # noqa: S102
    return [ns[n] for n in names]


def _names(lib):
    """What the examples call torch, nn, F and optim, for one library."""
    return {"torch": lib, "nn": lib.nn, "F": lib.nn.functional, "optim": lib.optim}


def _data(lib, shape, low=-1.0, high=1.0, seed=0):
    import numpy as np  # noqa: PLC0415 -- after the library: `import minicnn` must load NumPy
    return lib.tensor(np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32))


def _labels(lib, n, seed=1):
    import numpy as np  # noqa: PLC0415
    return lib.tensor(np.random.default_rng(seed).integers(0, 10, n))


def mnist(lib, quick):
    F, optim = lib.nn.functional, lib.optim
    (Net,) = example_defs("mnist.py", ["Net"], **_names(lib))
    n = 2 if quick else 64
    data, target = _data(lib, (n, 1, 28, 28)), _labels(lib, n)
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    model.train()

    def step():                             # examples/mnist.py, train()
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
    return step, f"batch {n} of 1x28x28, Adadelta"


def cifar10_tutorial(lib, quick):
    nn, optim = lib.nn, lib.optim
    (Net,) = example_defs("cifar10_tutorial.py", ["Net"], **_names(lib))
    batch_size = 4                          # the tutorial's, in quick mode too
    inputs, labels = _data(lib, (batch_size, 3, 32, 32)), _labels(lib, batch_size)
    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    running_loss = [0.0]

    def step():                             # examples/cifar10_tutorial.py, "4. Train"
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss[0] += loss.item()
    return step, f"batch {batch_size} of 3x32x32, SGD momentum"


def cifar_resnet(lib, quick):
    nn, optim = lib.nn, lib.optim
    _, _, ResNet18 = example_defs("cifar_resnet.py", ["BasicBlock", "ResNet", "ResNet18"],
                                  **_names(lib))
    n = 2 if quick else 128
    inputs, targets = _data(lib, (n, 3, 32, 32)), _labels(lib, n)
    net = ResNet18()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net.train()
    book = {"train_loss": 0.0, "correct": 0, "total": 0}

    def step():                             # examples/cifar_resnet.py, train()
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        book["train_loss"] += loss.item()
        _, predicted = outputs.max(1)
        book["total"] += targets.size(0)
        book["correct"] += predicted.eq(targets).sum().item()
    return step, f"batch {n} of 3x32x32, SGD momentum + weight decay"


def dcgan(lib, quick):
    torch, nn, optim = lib, lib.nn, lib.optim
    nz, ngf, ndf, nc = (16, 8, 8, 3) if quick else (100, 64, 64, 3)
    batch_size = 4 if quick else 64
    weights_init, Generator, Discriminator = example_defs(
        "dcgan.py", ["weights_init", "Generator", "Discriminator"],
        nz=nz, ngf=ngf, ndf=ndf, nc=nc, **_names(lib))
    netG, netD = Generator(1), Discriminator(1)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    real_cpu = _data(lib, (batch_size, nc, 64, 64), low=0.0)   # ToTensor's range
    real_label, fake_label = 1, 0
    netG.train()
    netD.train()

    def step():                             # examples/dcgan.py, the loop's body
        netD.zero_grad()
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        noise = torch.randn(batch_size, nz, 1, 1)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        return errD.item(), errG.item(), D_x, D_G_z1, D_G_z2     # what its print line reads
    return step, (f"64x64, batch {batch_size}, nz {nz}, ngf = ndf = {ngf}, "
                  "a D step and a G step, Adam")


PROGRAMS = {"mnist": mnist, "cifar10_tutorial": cifar10_tutorial, "cifar_resnet": cifar_resnet,
            "dcgan": dcgan}
