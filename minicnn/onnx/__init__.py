"""mc.onnx: export minicnn models to ONNX, to run them with onnxruntime (or anything that reads
ONNX). Needs the onnx package (`pip install 'minicnn[onnx]'`), imported only when exporting.

    mc.onnx.export(model, mc.randn(1, 3, 32, 32), "model.onnx")   # dynamic batch, opset 17

    import onnxruntime as ort
    sess = ort.InferenceSession("model.onnx")
    logits = sess.run(None, {"input": images.astype("float32")})[0]
"""
from .export import ExportError, export

__all__ = ["export", "ExportError"]
