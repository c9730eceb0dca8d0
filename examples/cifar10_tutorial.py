"""PyTorch's "Training a Classifier" tutorial (CIFAR-10), as a PyTorch user writes it, with `torch`
renamed to `minicnn`: load and normalize CIFAR-10, define a small CNN, train it with SGD and
momentum for two epochs, save and reload it, then test it, overall and per class.

CIFAR-10 cannot be downloaded by minicnn: put the Python version (cifar-10-batches-py) or the
binary one in ./data, or pass --fake-data for torchvision's FakeData of the same shape.
--steps N trains and tests on the first N mini-batches only (CI runs `--fake-data --steps 3`).

    python examples/cifar10_tutorial.py --fake-data --steps 50
"""
import argparse

import minicnn as torch
import minicnn.data.datasets as datasets
import minicnn.data.transforms as transforms
import minicnn.nn as nn
import minicnn.nn.functional as F
import minicnn.optim as optim
import minicnn.utils

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--fake-data", action="store_true", help="FakeData instead of CIFAR-10")
parser.add_argument("--steps", type=int, default=None, help="mini-batches per pass over data")
parser.add_argument("--workers", type=int, default=2)
args = parser.parse_args()

# 1. Load and normalize CIFAR-10 (images in [0, 1] become [-1, 1])
transform = transforms.Compose(
    [transforms.ToTensor(),
     transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
batch_size = 4

if args.fake_data:
    trainset = datasets.FakeData(50000, (3, 32, 32), 10, transform=transform)
    testset = datasets.FakeData(10000, (3, 32, 32), 10, transform=transform, random_offset=50000)
else:
    trainset = datasets.CIFAR10(root="./data", train=True, download=True, transform=transform)
    testset = datasets.CIFAR10(root="./data", train=False, download=True, transform=transform)
if args.steps:
    trainset = torch.utils.data.Subset(trainset, range(args.steps * batch_size))
    testset = torch.utils.data.Subset(testset, range(args.steps * batch_size))

trainloader = torch.utils.data.DataLoader(trainset, batch_size=batch_size, shuffle=True,
                                          num_workers=args.workers)
testloader = torch.utils.data.DataLoader(testset, batch_size=batch_size, shuffle=False,
                                         num_workers=args.workers)

classes = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def imshow(img, path):
    img = img / 2 + 0.5               # unnormalize
    minicnn.utils.save_image(img, path)   # (the tutorial shows it with matplotlib)


dataiter = iter(trainloader)
images, labels = next(dataiter)
imshow(minicnn.utils.make_grid(images), "train_batch.png")
print(" ".join(f"{classes[labels[j]]:5s}" for j in range(batch_size)))


# 2. A convolutional neural network for 3-channel images
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)       # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


net = Net()

# 3. A loss function and an optimizer
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

# 4. Train
for epoch in range(2):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()

        running_loss += loss.item()
        if i % 2000 == 1999 or args.steps and i == len(trainloader) - 1:
            print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / (i % 2000 + 1):.3f}")
            running_loss = 0.0
print("Finished Training")

PATH = "./cifar_net.pth"
torch.save(net.state_dict(), PATH)

# 5. Test: a few images first
dataiter = iter(testloader)
images, labels = next(dataiter)
imshow(minicnn.utils.make_grid(images), "test_batch.png")
print("GroundTruth: ", " ".join(f"{classes[labels[j]]:5s}" for j in range(4)))

net = Net()
net.load_state_dict(torch.load(PATH, weights_only=True))
outputs = net(images)
_, predicted = torch.max(outputs, 1)
print("Predicted: ", " ".join(f"{classes[predicted[j]]:5s}" for j in range(4)))

# the whole test set
correct = 0
total = 0
with torch.no_grad():
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predicted = torch.max(outputs, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print(f"Accuracy of the network on the {total} test images: {100 * correct // total} %")

# per class
correct_pred = {classname: 0 for classname in classes}
total_pred = {classname: 0 for classname in classes}
with torch.no_grad():
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predictions = torch.max(outputs, 1)
        for label, prediction in zip(labels, predictions):
            if label == prediction:
                correct_pred[classes[label]] += 1
            total_pred[classes[label]] += 1

for classname, correct_count in correct_pred.items():
    if total_pred[classname]:
        accuracy = 100 * float(correct_count) / total_pred[classname]
        print(f"Accuracy for class: {classname:5s} is {accuracy:.1f} %")

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
print(device)
del dataiter
