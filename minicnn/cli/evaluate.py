"""`minicnn evaluate CHECKPOINT`: a trained run's accuracy on its dataset's test split."""
import json
import os

from .. import data as D
from ..train import Trainer
from ..train.metrics import confusion_matrix, precision_recall_f1
from .common import add_inference_args, check_inference_args, load_data, load_run, normalizer


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on its dataset's test split")
    p.add_argument("checkpoint")
    p.add_argument("--data-dir", default=None, help="override the dataset folder of the run")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_inference_args(p)
    return p


def run(args):
    check_inference_args(args)
    model, meta = load_run(args.checkpoint, args.device)
    data_cfg = dict(meta["data"])
    if args.data_dir:
        data_cfg["data_dir"] = os.path.abspath(args.data_dir)
    test_set = load_data(data_cfg, train=False)
    test_set.transform = normalizer(meta)
    result = _evaluate(model, test_set, len(meta["classes"]), args)
    result = {"checkpoint": args.checkpoint, "dataset": data_cfg["dataset"], **result}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{meta['model']} on {data_cfg['dataset']} test split ({result['images']} images): "
              f"accuracy {result['accuracy'] * 100:.2f}% ({result['correct']}/"
              f"{result['images']}), loss {result['loss']:.4f}, macro precision "
              f"{result['macro_precision']:.4f}, recall {result['macro_recall']:.4f}, "
              f"F1 {result['macro_f1']:.4f}")
    return 0


def _evaluate(model, test_set, num_classes, args):
    trainer = Trainer(model, None, metrics=["accuracy"], device=args.device)
    loader = D.DataLoader(test_set, batch_size=args.batch_size)
    logits = trainer.predict(loader)
    scores = trainer.evaluate(loader)
    cm = confusion_matrix(test_set.targets, logits.argmax(1), num_classes)
    precision, recall, f1 = precision_recall_f1(cm)
    return {"images": len(test_set), "accuracy": float(scores["accuracy"]),
            "loss": float(scores["loss"]), "macro_precision": precision,
            "macro_recall": recall, "macro_f1": f1, "correct": int(cm.trace())}
