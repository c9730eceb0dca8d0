"""mc.einsum: Einstein summation under PyTorch's rules, composed from differentiable ops.

Each operand first loses its repeated subscripts (a diagonal, as 'ii->i') and the subscripts no
other operand and not the output uses (a sum). Then the operands are contracted left to right
(PyTorch's order without opt_einsum), each pair as one batched matmul:

    A (batch, left, contracted) @ B (batch, contracted, right) -> (batch, left, right)

Subscripts are a-z and A-Z; '...' stands for the broadcast dims; without '->' the output is the
'...' dims and then the subscripts used once, in alphabetical order (capitals first).
"""
import math

from ..tensor import Tensor
from .linalg import matmul
from .rearrange import diagonal
from .util import shape_str

_OP = "einsum"


def _parse_term(term, where):
    """Labels of one term: letters and one '...' (kept as the token '...')."""
    labels, i = [], 0
    while i < len(term):
        if term.startswith("...", i):
            if "..." in labels:
                raise ValueError(f"{_OP}: more than one ellipsis ('...') in {where}")
            labels.append("...")
            i += 3
        elif term[i].isascii() and term[i].isalpha():
            labels.append(term[i])
            i += 1
        else:
            raise ValueError(f"{_OP}: invalid subscript {term[i]!r} in {where}; subscripts must "
                             "be in [a-zA-Z]")
    return labels


def _expand_ellipsis(labels, ndim, k, n_ell):
    """Replace '...' by n dims labelled ('...', j), aligned to the right of n_ell."""
    if "..." not in labels:
        if len(labels) != ndim:
            raise ValueError(f"{_OP}: the number of subscripts in the equation ({len(labels)}) "
                             f"does not match the number of dimensions ({ndim}) for operand {k} "
                             "and no ellipsis was given")
        return labels
    n = ndim - (len(labels) - 1)
    if n < 0:
        raise ValueError(f"{_OP}: the number of subscripts in the equation ({len(labels) - 1}) "
                         f"is more than the number of dimensions ({ndim}) for operand {k}")
    at = labels.index("...")
    return labels[:at] + [("...", n_ell - n + j) for j in range(n)] + labels[at + 1:]


def _parse(equation, operands):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"{_OP}: the equation {equation!r} has {len(terms)} operand(s) but "
                         f"{len(operands)} were given")
    parsed = [_parse_term(t, f"operand {k} of {equation!r}") for k, t in enumerate(terms)]
    n_ell = max((t.ndim - len(p) + 1 for t, p in zip(operands, parsed) if "..." in p),
                default=0)
    inputs = [_expand_ellipsis(p, t.ndim, k, n_ell)
              for k, (p, t) in enumerate(zip(parsed, operands))]
    ell = [("...", j) for j in range(n_ell)]
    if arrow:
        out = _parse_term(rhs, f"the output of {equation!r}")
        if "..." in out:
            at = out.index("...")
            out = out[:at] + ell + out[at + 1:]
        seen = set()
        for label in out:
            if label in seen:
                raise ValueError(f"{_OP}: output subscript {label} appears more than once in "
                                 f"the output of {equation!r}")
            seen.add(label)
            if not isinstance(label, tuple) and not any(label in i for i in inputs):
                raise ValueError(f"{_OP}: output subscript {label} does not appear in the "
                                 f"equation {equation!r} for any input operand")
    else:
        counts = {}
        for labels in inputs:
            for label in labels:
                if not isinstance(label, tuple):
                    counts[label] = counts.get(label, 0) + 1
        out = ell + sorted(label for label, c in counts.items() if c == 1)
    return inputs, out


def _label_sizes(inputs, operands):
    sizes = {}
    for k, (labels, t) in enumerate(zip(inputs, operands)):
        for label, n in zip(labels, t.shape):
            seen = sizes.get(label, 1)
            if n != 1 and seen not in (1, n):
                name = "..." if isinstance(label, tuple) else label
                raise ValueError(f"{_OP}: subscript {name} has size {n} for operand {k} "
                                 f"(shape {shape_str(t.shape)}), which does not broadcast with "
                                 f"the size {seen} seen before")
            sizes[label] = max(seen, n)
    return sizes


def _take_diagonals(x, labels):
    """Repeated subscripts of one operand: the diagonal of each pair, until all differ."""
    labels = list(labels)
    while len(set(labels)) < len(labels):
        label = next(lb for lb in labels if labels.count(lb) > 1)
        i = labels.index(label)
        j = labels.index(label, i + 1)
        x = diagonal(x, 0, i, j)                                   # the pair -> a last dim
        labels = [lb for n, lb in enumerate(labels) if n not in (i, j)] + [label]
    return x, labels


def _sum_out(x, labels, keep):
    axes = tuple(i for i, label in enumerate(labels) if label not in keep)
    if not axes:
        return x, labels
    return x.sum(dim=axes), [label for label in labels if label in keep]


def _arranged(x, labels, order, sizes):
    """x permuted to the label order, broadcast dims expanded to their full size."""
    x = x.permute(*[labels.index(label) for label in order])
    full = tuple(sizes[label] for label in order)
    return x if tuple(x.shape) == full else x.expand(*full)


def _contract(a, la, b, lb, keep, sizes):
    """One pair: the labels of both that are kept later are batch dims, the others summed."""
    batch = [label for label in la if label in lb and label in keep]
    summed = [label for label in la if label in lb and label not in keep]
    left = [label for label in la if label not in lb]
    right = [label for label in lb if label not in la]
    a = _arranged(a, la, batch + left + summed, sizes)
    b = _arranged(b, lb, batch + summed + right, sizes)

    def prod(labels):
        return math.prod(sizes[label] for label in labels)
    y = matmul(a.reshape(prod(batch), prod(left), prod(summed)),        # (B, L, C)
               b.reshape(prod(batch), prod(summed), prod(right)))       # (B, C, R) -> (B, L, R)
    labels = batch + left + right
    return y.reshape(*[sizes[label] for label in labels]), labels


def einsum(equation, *operands):
    """torch.einsum(equation, *operands) (operands may also come as one list)."""
    if not isinstance(equation, str):
        raise TypeError(f"{_OP}: the equation must be a string, got {type(equation).__name__}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError(f"{_OP}: must provide at least one operand")
    for k, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"{_OP}: operand {k} must be a Tensor, got {type(t).__name__}")
    inputs, out = _parse(equation, operands)
    sizes = _label_sizes(inputs, operands)
    terms = []
    for k, (x, labels) in enumerate(zip(operands, inputs)):
        x, labels = _take_diagonals(x, labels)
        later = set(out).union(*[set(i) for n, i in enumerate(inputs) if n != k])
        terms.append(_sum_out(x, labels, later))
    y, labels = terms[0]
    for k in range(1, len(terms)):
        keep = set(out).union(*[set(i) for i in inputs[k + 1:]])
        y, labels = _sum_out(y, labels, keep | set(terms[k][1]))
        y, labels = _contract(y, labels, *terms[k], keep, sizes)
    y, labels = _sum_out(y, labels, set(out))
    return _arranged(y, labels, out, sizes)
