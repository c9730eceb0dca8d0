"""Grad mode: whether calling a Function records it in the graph.

`no_grad()`, `enable_grad()`, `set_grad_enabled(mode)` and `inference_mode()` work as context
managers and as decorators, as PyTorch's do; `is_grad_enabled()` reads the mode. The mode is
per thread, as PyTorch's is: `no_grad` in one thread (an evaluation loop) does not stop another
thread's training from recording its graph.
"""
import functools
import threading


class _GradModeState(threading.local):
    enabled = True   # the class attribute is every new thread's starting value


_GradMode = _GradModeState()


def is_grad_enabled():
    return _GradMode.enabled


def _with_grad_mode(func, mode):
    """func wrapped so that it always runs with grad mode `mode`."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        prev = _GradMode.enabled
        _GradMode.enabled = mode
        try:
            return func(*args, **kwargs)
        finally:
            _GradMode.enabled = prev
    return wrapper


class set_grad_enabled:
    """Turn graph recording on or off; usable as a call, a context manager or a decorator."""

    def __init__(self, mode):
        self.prev = _GradMode.enabled
        self.mode = bool(mode)
        _GradMode.enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False

    def __call__(self, func):
        _GradMode.enabled = self.prev  # decorating must not change the mode now
        return _with_grad_mode(func, self.mode)


class _ModeContext:
    mode = None

    def __enter__(self):
        self.prev = _GradMode.enabled
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False

    def __call__(self, func):
        return _with_grad_mode(func, self.mode)


class no_grad(_ModeContext):
    """`with mc.no_grad():` or `@mc.no_grad()`: nothing inside is recorded."""
    mode = False


class enable_grad(_ModeContext):
    mode = True


class inference_mode:
    """`with mc.inference_mode():` or `@mc.inference_mode()` (also a bare `@mc.inference_mode`):
    PyTorch's inference mode, which here is no_grad (minicnn keeps no per-tensor autograd
    bookkeeping that inference mode could skip). `inference_mode(False)` changes nothing."""

    def __new__(cls, mode=True):
        if callable(mode):  # a bare decorator: @mc.inference_mode
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = _GradMode.enabled
        if self.mode:
            _GradMode.enabled = False
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False

    def __call__(self, func):
        return _with_grad_mode(func, False) if self.mode else func
