"""ResNet-18 on CIFAR-10 with checkpoints and --resume, written as the widely used PyTorch CIFAR
training scripts are (kuangliu/pytorch-cifar's main.py and its models/resnet.py), with `torch`
renamed to `minicnn`: random-crop and flip augmentation, SGD with momentum and weight decay, a
cosine schedule, the best test accuracy saved to ./checkpoint/ckpt.pth and --resume from it.

CIFAR-10 cannot be downloaded by minicnn: put it in ./data (the Python or the binary version), or
pass --fake-data. --steps N uses the first N batches of each split; --epochs, --batch-size and
--test-batch-size exist because a CPU run of the full schedule (200 epochs) takes weeks.

    python examples/cifar_resnet.py --fake-data --steps 2 --batch-size 2 --epochs 1
    python examples/cifar_resnet.py --fake-data --steps 2 --batch-size 2 --epochs 1 --resume
"""
import argparse
import os
import sys
import time

import minicnn as torch
import minicnn.backends.cudnn as cudnn
import minicnn.data.datasets as datasets
import minicnn.data.transforms as transforms
import minicnn.nn as nn
import minicnn.nn.functional as F
import minicnn.optim as optim


# --- the model: ResNet-18 for 32x32 images (3x3 stem, no max pool) -------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride,
                          bias=False),
                nn.BatchNorm2d(self.expansion * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        return self.linear(out)


def ResNet18():
    return ResNet(BasicBlock, [2, 2, 2, 2])


def progress_bar(current, total, msg):
    """One line per batch, rewritten in place (the original's xlua-style bar, shortened)."""
    end = "\n" if current == total - 1 else "\r"
    sys.stdout.write(f" [{current + 1}/{total}] {msg}{end}")
    sys.stdout.flush()


# --- the training script -------------------------------------------------------------------------

parser = argparse.ArgumentParser(description="minicnn CIFAR10 Training")
parser.add_argument("--lr", default=0.1, type=float, help="learning rate")
parser.add_argument("--resume", "-r", action="store_true", help="resume from checkpoint")
parser.add_argument("--epochs", default=200, type=int)
parser.add_argument("--batch-size", default=128, type=int)
parser.add_argument("--test-batch-size", default=100, type=int)
parser.add_argument("--workers", default=2, type=int)
parser.add_argument("--steps", default=None, type=int, help="batches per split (a short run)")
parser.add_argument("--fake-data", action="store_true", help="FakeData instead of CIFAR-10")
args = parser.parse_args()

device = "cuda" if torch.cuda.is_available() else "cpu"
best_acc = 0
start_epoch = 0

print("==> Preparing data..")
transform_train = transforms.Compose([
    transforms.RandomCrop(32, padding=4),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])
transform_test = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
])
if args.fake_data:
    trainset = datasets.FakeData(50000, (3, 32, 32), 10, transform=transform_train)
    testset = datasets.FakeData(10000, (3, 32, 32), 10, transform=transform_test,
                                random_offset=50000)
else:
    trainset = datasets.CIFAR10(root="./data", train=True, download=True,
                                transform=transform_train)
    testset = datasets.CIFAR10(root="./data", train=False, download=True,
                               transform=transform_test)
if args.steps:
    trainset = torch.utils.data.Subset(trainset, range(args.steps * args.batch_size))
    testset = torch.utils.data.Subset(testset, range(args.steps * args.test_batch_size))
trainloader = torch.utils.data.DataLoader(trainset, batch_size=args.batch_size, shuffle=True,
                                          num_workers=args.workers)
testloader = torch.utils.data.DataLoader(testset, batch_size=args.test_batch_size, shuffle=False,
                                         num_workers=args.workers)

classes = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

print("==> Building model..")
net = ResNet18()
net = net.to(device)
if device == "cuda":
    net = torch.nn.DataParallel(net)
    cudnn.benchmark = True

if args.resume:
    print("==> Resuming from checkpoint..")
    assert os.path.isdir("checkpoint"), "Error: no checkpoint directory found!"
    checkpoint = torch.load("./checkpoint/ckpt.pth")
    net.load_state_dict(checkpoint["net"])
    best_acc = checkpoint["acc"]
    start_epoch = checkpoint["epoch"]
    print(f"resumed at epoch {start_epoch} with best accuracy {best_acc:.3f}%")

criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)


def train(epoch):
    print(f"\nEpoch: {epoch}")
    net.train()
    train_loss = 0
    correct = 0
    total = 0
    started = time.time()
    for batch_idx, (inputs, targets) in enumerate(trainloader):
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()

        train_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
        progress_bar(batch_idx, len(trainloader),
                     f"Loss: {train_loss / (batch_idx + 1):.3f} | "
                     f"Acc: {100. * correct / total:.3f}% ({correct}/{total}) | "
                     f"{time.time() - started:.1f} s")


def test(epoch):
    global best_acc
    net.eval()
    test_loss = 0
    correct = 0
    total = 0
    with torch.no_grad():
        for batch_idx, (inputs, targets) in enumerate(testloader):
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = net(inputs)
            loss = criterion(outputs, targets)

            test_loss += loss.item()
            _, predicted = outputs.max(1)
            total += targets.size(0)
            correct += predicted.eq(targets).sum().item()
            progress_bar(batch_idx, len(testloader),
                         f"Loss: {test_loss / (batch_idx + 1):.3f} | "
                         f"Acc: {100. * correct / total:.3f}% ({correct}/{total})")

    acc = 100. * correct / total
    if acc > best_acc:
        print("Saving..")
        state = {"net": net.state_dict(), "acc": acc, "epoch": epoch}
        if not os.path.isdir("checkpoint"):
            os.mkdir("checkpoint")
        torch.save(state, "./checkpoint/ckpt.pth")
        best_acc = acc


for epoch in range(start_epoch, start_epoch + args.epochs):
    train(epoch)
    test(epoch)
    scheduler.step()
