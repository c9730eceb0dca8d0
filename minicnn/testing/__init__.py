"""Public testing tools: gradcheck for any op (yours too) and hypothesis strategies.

`strategies` needs hypothesis (the [test] extra) and is imported on first use.
"""
from .gradcheck import GradcheckError, gradcheck, noncontiguous
from .gradgradcheck import gradgradcheck


def __getattr__(name):
    if name == "strategies":
        import importlib  # noqa: PLC0415
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module 'minicnn.testing' has no attribute {name!r}")
