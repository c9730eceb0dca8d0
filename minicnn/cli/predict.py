"""`minicnn predict CHECKPOINT IMAGES`: class predictions for images in a .npy / .npz file."""
import json
import os
import sys

import numpy

from ..train import Trainer
from .common import (CLIError, add_inference_args, check_inference_args, check_output_file,
                     load_run, normalizer, positive_option)


def add_parser(sub):
    p = sub.add_parser("predict", help="classify images from a .npy / .npz file")
    p.add_argument("checkpoint")
    p.add_argument("images", help=".npy or .npz of images (N, C, H, W), (N, H, W) or one image; "
                                  "float values in [0, 1] or uint8 0..255")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--output", default=None, help="write the predictions to a .json or .csv file")
    add_inference_args(p)
    return p


def run(args):
    check_inference_args(args)
    positive_option(args.top_k, "--top-k")
    check_output_file(args.output, "--output")
    model, meta = load_run(args.checkpoint, args.device)
    images = load_images(args.images, tuple(meta["image_shape"]))
    warn_if_out_of_range(images, args.images)
    logits = Trainer(model, None, device=args.device).predict(normalizer(meta)(images),
                                                              batch_size=args.batch_size)
    rows = prediction_rows(softmax(logits), meta["classes"], args.top_k)
    for r in rows:
        print(_prediction_line(r))
    if args.output:
        write_predictions(rows, args.output)
    return 0


def load_images(path, image_shape):
    """Images from .npy / .npz, as float32 (N, C, H, W) in [0, 1]; clear errors otherwise."""
    a = _read_array(path)
    c, h, w = image_shape
    original = list(a.shape)
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:   # one image (C, H, W), or a batch of one-channel images (N, H, W)
        a = a[None] if a.shape[0] == c and c != 1 or tuple(a.shape) == (c, h, w) else a[:, None]
    if a.size == 0:
        raise CLIError(f"{path} holds no images (an array of shape {original})")
    if a.ndim != 4 or tuple(a.shape[1:]) != (c, h, w):
        raise CLIError(f"images of the wrong shape: the model expects (N, {c}, {h}, {w}) "
                       f"(or (N, {h}, {w}) for one channel), got {original} from {path}")
    if a.dtype == numpy.uint8:
        a = a.astype(numpy.float32) / 255.0
    elif a.dtype.kind not in "fiu":
        raise CLIError(f"{path}: images must be numbers, got dtype {a.dtype}")
    return numpy.ascontiguousarray(a, dtype=numpy.float32)


def warn_if_out_of_range(images, path):
    """Warnings on stderr for images holding NaN or inf (they get no prediction when the model's
    output is not finite) and when the finite values are clearly not in [0, 1], the range the
    model was trained on (0..255 floats give confident nonsense: every pixel saturates)."""
    finite = numpy.isfinite(images)
    bad = numpy.flatnonzero(~finite.reshape(len(images), -1).all(1))
    if bad.size:
        which = ", ".join(map(str, bad[:10])) + (", ..." if bad.size > 10 else "")
        print(f"minicnn predict: warning: {path}: {bad.size} image(s) ({which}) hold NaN or "
              "infinite values; their predictions are meaningless", file=sys.stderr)
    values = images[finite]
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    if lo < -0.5 or hi > 1.5:
        hint = " (divide by 255, or save them as uint8)" if hi > 1.5 and hi <= 255 else ""
        print(f"minicnn predict: warning: the images range over [{lo:g}, {hi:g}], but the model "
              f"was trained on images in [0, 1]{hint}", file=sys.stderr)


def _read_array(path):
    """The array in a .npy file, or the images array of a .npz file."""
    if not os.path.exists(path):
        raise CLIError(f"images file not found: {path}")
    if not path.endswith((".npy", ".npz")):
        raise CLIError(f"{path}: expected a .npy or .npz file of images (PNG/JPEG are not read; "
                       "convert them with numpy first)")
    try:
        loaded = numpy.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 -- any reason numpy cannot read it is the user's file
        raise CLIError(f"cannot read {path} as a NumPy file: {e}") from None
    if not isinstance(loaded, numpy.lib.npyio.NpzFile):
        return loaded
    with loaded:
        keys = loaded.files
        key = next((k for k in ("images", "x", "X", "data") if k in keys),
                   keys[0] if keys else None)
        if key is None:
            raise CLIError(f"{path}: the .npz file holds no arrays")
        return loaded[key]


def softmax(logits):
    z = numpy.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def prediction_rows(prob, classes, top_k):
    """One dict per image: the predicted class, its probability and the top-k classes; an image
    whose probabilities are not finite (NaN in, NaN out) gets none (prediction None)."""
    k = max(1, min(top_k, prob.shape[1]))
    top = numpy.argsort(-prob, axis=1)[:, :k]
    rows = []
    for i, (p, best) in enumerate(zip(prob, top)):
        if not numpy.isfinite(p).all():
            rows.append({"index": i, "prediction": None, "class_index": None,
                         "probability": None, "top_k": []})
            continue
        rows.append({"index": i, "prediction": classes[int(best[0])],
                     "class_index": int(best[0]), "probability": float(p[best[0]]),
                     "top_k": [[classes[int(j)], float(p[j])] for j in best]})
    return rows


def _prediction_line(row):
    if row["prediction"] is None:
        return f"{row['index']}\t-\t-  (no prediction: the model's output is not finite)"
    top_k = row["top_k"]
    extra = "" if len(top_k) == 1 else "  (" + ", ".join(f"{c} {p:.3f}" for c, p in top_k) + ")"
    return f"{row['index']}\t{row['prediction']}\t{row['probability']:.4f}{extra}"


def write_predictions(rows, path):
    """.json: the rows as they are; anything else: CSV without the top-k lists."""
    with open(path, "w") as f:
        if path.endswith(".json"):
            json.dump(rows, f, indent=2)
            return
        f.write("index,prediction,class_index,probability\n")
        for r in rows:
            if r["prediction"] is None:         # no prediction: empty fields
                f.write(f"{r['index']},,,\n")
                continue
            f.write(f"{r['index']},{r['prediction']},{r['class_index']},{r['probability']:.6f}\n")
