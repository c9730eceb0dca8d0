"""Structured channel pruning of a small ResNet on Shapes: train, prune 50% of the prunable
channels (the inner channels of every residual block, by filter L1 norm), fine-tune, and compare
accuracy, size and CPU forward time; then fold the batch norms of the pruned model.

    python examples/compress_resnet.py [--size 16 --width 16 --blocks 1 --epochs 6 --json f]
"""
import argparse
import json
import os

# Numba's OpenMP workers spin-wait by default; on a small shared CPU that makes every parallel
# kernel call cost milliseconds (measured here: a ReLU on 138 k floats 11.7 ms vs 0.04 ms
# passive). Must be set before the OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import time

import numpy as np

import minicnn as mc
from minicnn import compress
from minicnn.models.resnet import BasicBlock, ResNet
from minicnn.train import Trainer


def train(model, train_set, epochs, lr, seed=0):
    mc.manual_seed(seed)
    opt = mc.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = mc.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    Trainer(model, opt, "cross_entropy", ["accuracy"], scheduler=sched).fit(
        train_set, epochs=epochs, batch_size=64, verbose=0)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--amount", type=float, default=0.5)
    ap.add_argument("--dataset", default="shapes", choices=["shapes", "digits"])
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--time-batch", type=int, default=64, help="images per timed forward")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    mc.manual_seed(0)
    if args.dataset == "shapes":
        tr = mc.data.Shapes(args.train, image_size=args.size, seed=0, train=True)
        te = mc.data.Shapes(args.test, image_size=args.size, seed=0, train=False)
        classes, channels = 5, 3
    else:
        tr, te = mc.data.Digits(train=True), mc.data.Digits(train=False)
        classes, channels = 10, 1
    model = ResNet(BasicBlock, [args.blocks] * 4, num_classes=classes, in_channels=channels,
                   cifar=True, width=args.width)
    t0 = time.perf_counter()
    train(model, tr, args.epochs, args.lr)
    out = {"model": f"ResNet(BasicBlock, {[args.blocks] * 4}, width={args.width}, cifar stem)",
           "data": f"{args.dataset} {len(tr)} train / {len(te)} test, "
                   f"{tr.array.shape[2]}x{tr.array.shape[3]}",
           "epochs": args.epochs, "train_s": time.perf_counter() - t0}
    x = te.array[:args.time_batch]
    out["float_accuracy"] = compress.accuracy(model, te)
    pruned = compress.prune_channels(model, amount=args.amount, example_input=x[:2])
    out["pruned_convs"] = {k: len(v) for k, v in pruned.pruned_channels.items()}
    out["accuracy_after_prune"] = compress.accuracy(pruned, te)
    t0 = time.perf_counter()
    train(pruned, tr, args.ft_epochs, 0.01)
    out["finetune_s"] = time.perf_counter() - t0
    rep = compress.compare_models(model, pruned, te, example_input=x, repeats=10)
    out["pruned"] = rep
    out["params"] = model.num_parameters()
    out["pruned_params"] = pruned.num_parameters()
    folded = compress.fold_batchnorm(pruned, example_input=x[:2])
    base, fold_s = compress.time_forward_pair(model, folded, x, 10)
    out["pruned_folded"] = {"accuracy": compress.accuracy(folded, te), "forward_s": fold_s,
                            "speedup": base / fold_s}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
