"""mc.summary(model, input_shape): a Keras-style table of layers, output shapes and parameters."""

__all__ = ["summary"]


def _shape_of(out):
    from .tensor import Tensor  # noqa: PLC0415
    if isinstance(out, Tensor):
        return "(None, " + ", ".join(str(s) for s in out.shape[1:]) + ")" if out.ndim > 1 \
            else str(tuple(out.shape))
    if isinstance(out, (list, tuple)):
        return "[" + ", ".join(_shape_of(o) for o in out) + "]"
    return type(out).__name__


def summary(model, input_shape, batch_size=2, dtype=None, device=None, line_length=80,
            print_fn=print):
    """Run one forward pass on zeros of shape (batch_size, *input_shape) (in eval mode, without
    gradients) and print one row per layer that holds parameters or has no children: its dotted
    name and type, its output shape (batch dimension shown as None) and its own parameter count.
    input_shape excludes the batch dimension, as in Keras. Returns the table as a string."""
    from . import creation  # noqa: PLC0415
    from .autograd import no_grad  # noqa: PLC0415

    shapes = input_shape if input_shape and isinstance(input_shape[0], (list, tuple)) \
        else [input_shape]
    rows, handles = [], []
    names = {id(m): name for name, m in model.named_modules()}

    def hook(module, inputs, output):
        own = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append((names.get(id(module), "?"), type(module).__name__, _shape_of(output), own))

    for name, m in model.named_modules():
        if name and (not m._modules or m._parameters):
            handles.append(m.register_forward_hook(hook))
    was_training = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        if device is None:       # the model's own device (a CUDA model gets CUDA inputs)
            device = next((p.device for p in model.parameters()), "cpu")
        inputs = [creation.zeros((batch_size,) + tuple(s), dtype=dtype, device=device)
                  for s in shapes]
        with no_grad():
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in was_training:
            object.__setattr__(m, "training", mode)
    if not rows:  # a single layer
        rows.append((type(model).__name__, type(model).__name__, _shape_of(out),
                     sum(p.numel() for p in model.parameters(recurse=False))))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    w1, w2 = int(line_length * 0.45), int(line_length * 0.33)
    lines = [f'Model: "{type(model).__name__}"', "_" * line_length,
             f"{' Layer (type)':<{w1}}{'Output Shape':<{w2}}Param #", "=" * line_length]
    for i, (name, kind, shape, n) in enumerate(rows):
        label = f" {name} ({kind})"
        lines.append(f"{label:<{w1}}{shape:<{w2}}{n:,}")
        if i < len(rows) - 1:
            lines.append("")
    lines += ["=" * line_length, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * line_length]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
