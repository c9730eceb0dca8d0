"""Training checkpoints on top of mc.save / mc.load: model weights, optimizer state, epoch, logs
and JSON-able metadata (model name and arguments, classes, normalization, ...).

    save_checkpoint(path, model, optimizer, epoch=3, logs={...}, config={...})
    ck = load_checkpoint(path)     # {'model': state dict, 'optimizer': ... or None, 'meta': {...}}
    model.load_state_dict(ck['model'])

mc.save writes atomically (temporary file, fsync, rename), so the previous checkpoint survives a
crash or a NaN stop.
"""
import os

from ..serialization import CheckpointError, load, save

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]


def save_checkpoint(path, model, optimizer=None, meta=None, **more_meta):
    """Save model.state_dict() (a DistributedDataParallel's module's: the bare model's keys),
    optimizer.state_dict() (if given) and the metadata `meta` (a dict) plus any keyword
    arguments to `path`."""
    meta = {**(meta or {}), **more_meta}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    from .distributed import unwrap  # noqa: PLC0415
    save({"model": unwrap(model).state_dict(),
          "optimizer": optimizer.state_dict() if optimizer is not None else None,
          "meta": meta}, path)
    return path


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by save_checkpoint (tensors on `map_location`)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ck = load(path, map_location=map_location)
    if not isinstance(ck, dict) or "model" not in ck:
        raise CheckpointError(f"{path}: a minicnn file but not a training checkpoint (no "
                              "'model' entry)")
    ck.setdefault("meta", {})
    ck.setdefault("optimizer", None)
    return ck
