"""mc.models: LeNet-5, SimpleCNN, VGG-11/16 (+BN), ResNet-18/34/50 (torchvision names; CIFAR
variant), DenseNet.

    model = mc.models.resnet18(num_classes=10, cifar=True)
    model = mc.models.get_model("lenet5", num_classes=10, in_channels=1, image_size=8)
"""
from .densenet import DenseNet, densenet121, densenet_small
from .resnet import (BasicBlock, Bottleneck, ResNet, resnet18, resnet18_cifar, resnet34,
                     resnet34_cifar, resnet50)
from .simple import LeNet5, SimpleCNN, lenet5, simple_cnn
from .vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn

MODELS = {
    "lenet5": lenet5, "simple_cnn": simple_cnn, "vgg11": vgg11, "vgg11_bn": vgg11_bn,
    "vgg16": vgg16, "vgg16_bn": vgg16_bn, "resnet18": resnet18, "resnet34": resnet34,
    "resnet50": resnet50, "resnet18_cifar": resnet18_cifar, "resnet34_cifar": resnet34_cifar,
    "densenet_small": densenet_small, "densenet121": densenet121,
}


def list_models():
    return sorted(MODELS)


def get_model(name, **kwargs):
    """Build a model by name (see list_models()); unknown names raise a ValueError listing them."""
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return MODELS[key](**kwargs)


__all__ = ["MODELS", "list_models", "get_model", "LeNet5", "SimpleCNN", "lenet5", "simple_cnn",
           "VGG", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "ResNet", "BasicBlock", "Bottleneck",
           "resnet18", "resnet34", "resnet50", "resnet18_cifar", "resnet34_cifar", "DenseNet",
           "densenet_small", "densenet121"]
