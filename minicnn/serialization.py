"""mc.save / mc.load: checkpoints of state dicts (models, optimizers, schedulers, RNG state).

File format (version 1)
-----------------------
A checkpoint is a NumPy `.npz` file (a zip archive of `.npy` members, written uncompressed)
holding:

- `__minicnn__`: a 1-D uint8 array, the UTF-8 bytes of a JSON header
  `{"format": "minicnn-checkpoint", "version": 1, "arrays": {name: [dtype, shape]},
  "object": <node>}`;
- `a0`, `a1`, ...: one array per tensor or array in the saved object, always as host (NumPy)
  arrays, so a checkpoint written on a GPU loads on a CPU-only machine.

A <node> encodes the saved object tree, every container tagged so that types survive:
JSON null/true/false/int/str as themselves; floats as JSON numbers, except non-finite ones as
`{"__float__": "inf" | "-inf" | "nan"}`; lists as JSON lists; `{"__tuple__": [nodes]}`;
`{"__dict__": [[key node, value node], ...]}` (any key type, order kept; OrderedDict and Counter
load as dict); `{"__tensor__": "a3", "device": "cuda", "requires_grad": false}`;
`{"__ndarray__": "a3"}`; `{"__scalar__": "a3"}` (a NumPy scalar). Nothing is pickled: the archive
is read with `allow_pickle=False`, so loading an untrusted file cannot run code.

Writes are atomic: the archive is written to a temporary file in the target's directory,
flushed and fsync'ed, then renamed over the target with os.replace, so a crash never leaves a
half-written checkpoint under the real name (minicnn/fileio.py; the next save to a path removes
the temporary files of killed writers). Loading reads and checks every member (zip CRCs,
the header, each array's dtype and shape) before returning, and raises CheckpointError for a
truncated or corrupt file.
"""
import collections
import io
import json
import math
import os
import zipfile

import numpy

from . import devices, dtypes
from .fileio import write_atomic
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError", "save_safetensors", "load_safetensors"]

FORMAT, VERSION, HEADER_KEY = "minicnn-checkpoint", 1, "__minicnn__"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read: truncated, corrupt, or not a minicnn checkpoint."""


class _Encoder:
    def __init__(self):
        self.arrays = {}

    def _add(self, array):
        name = f"a{len(self.arrays)}"
        a = devices.to_numpy(array)  # (ascontiguousarray would turn 0-d into 1-d)
        self.arrays[name] = a if a.flags.c_contiguous else numpy.array(a, order="C")
        return name

    def encode(self, obj, where="obj"):
        if isinstance(obj, numpy.generic):  # before float: numpy.float64 subclasses float
            return {"__scalar__": self._add(numpy.asarray(obj))}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and not isinstance(obj, bool):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return {"__float__": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, Tensor):
            return {"__tensor__": self._add(obj.array), "device": obj.device,
                    "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, numpy.ndarray) or devices.is_cuda_array(obj):
            if obj.dtype == object:
                raise TypeError(f"mc.save: {where} is an object array, which cannot be saved "
                                "without pickle")
            return {"__ndarray__": self._add(obj)}
        if hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy"):
            return {"__ndarray__": self._add(obj.detach().cpu().numpy())}  # a torch tensor
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            return {"__dict__": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                                 for k, v in obj.items()]}
        from .nn.module import Module  # noqa: PLC0415
        hint = " (save model.state_dict() instead)" if isinstance(obj, Module) else ""
        raise TypeError(f"mc.save: cannot save {where} of type {type(obj).__name__}{hint}; "
                        "supported: dict, list, tuple, Tensor, NumPy/CuPy arrays and scalars, "
                        "int, float, bool, str, None")


def save(obj, f, format=None):  # noqa: A002 -- the word for it
    """Save obj (a state dict, or nested dicts/lists/tuples of tensors, arrays and plain values)
    to the path (or binary file object) f, atomically when f is a path. format='safetensors'
    (the default for a path ending in .safetensors) writes a flat dict of tensors as a
    safetensors file instead (save_safetensors)."""
    if _format(f, format) == "safetensors":
        save_safetensors(obj, f)
        return
    enc = _Encoder()
    tree = enc.encode(obj)
    header = {"format": FORMAT, "version": VERSION,
              "arrays": {k: [_dtype_name(a.dtype), list(a.shape)] for k, a in enc.arrays.items()},
              "object": tree}
    members = {HEADER_KEY: numpy.frombuffer(json.dumps(header).encode("utf-8"), numpy.uint8)}
    # bfloat16 (ml_dtypes) is stored as its bits: NumPy's .npy format would write it as void
    members.update({k: a.view(numpy.uint16) if a.dtype == dtypes.bfloat16 else a
                    for k, a in enc.arrays.items()})
    if hasattr(f, "write"):
        numpy.savez(f, **members)
        return
    # a file object: np.savez would append '.npz' to a name
    write_atomic(f, lambda fh: numpy.savez(fh, **members))


def _dtype_name(dtype):
    """An array's dtype in the header: NumPy's dtype.str ('<f4'), or 'bfloat16'."""
    return "bfloat16" if dtype == dtypes.bfloat16 else dtype.str


def _read(f, name):
    """Every member of the archive, read and CRC-checked; CheckpointError on any failure."""
    try:
        with numpy.load(f, allow_pickle=False) as npz:
            members = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError,
            AttributeError, TypeError) as e:
        raise CheckpointError(f"mc.load: {name} is not a readable minicnn checkpoint (truncated "
                              f"or corrupt file): {type(e).__name__}: {e}") from e
    if HEADER_KEY not in members:
        raise CheckpointError(f"mc.load: {name} has no minicnn header: not a checkpoint written "
                              "by mc.save")
    try:
        header = json.loads(members.pop(HEADER_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"mc.load: {name}: the header is corrupt ({e})") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"mc.load: {name} is not a minicnn checkpoint")
    if header.get("version") != VERSION:
        raise CheckpointError(f"mc.load: {name} has format version {header.get('version')}; "
                              f"this minicnn reads version {VERSION}")
    listed = header.get("arrays", {})
    if set(listed) != set(members):
        raise CheckpointError(f"mc.load: {name}: the archive's arrays "
                              f"{sorted(members)[:5]}... do not match its header "
                              f"{sorted(listed)[:5]}...")
    for k, (dtype, shape) in listed.items():
        a = members[k]
        if dtype == "bfloat16" and a.dtype == numpy.uint16:
            a = members[k] = a.view(dtypes.bfloat16)
        if _dtype_name(a.dtype) != dtype or list(a.shape) != list(shape):
            raise CheckpointError(f"mc.load: {name}: array {k} has dtype {a.dtype.str} and shape "
                                  f"{list(a.shape)}, but the header says {dtype} {shape}")
    return header, members


class _Decoder:
    def __init__(self, arrays, map_location, name):
        self.arrays, self.map_location, self.name = arrays, map_location, name

    def _array(self, key):
        if key not in self.arrays:
            raise CheckpointError(f"mc.load: {self.name}: the header refers to a missing array "
                                  f"{key!r}")
        return self.arrays[key]

    def _device(self, saved):
        if self.map_location is not None:
            return devices.normalize_device(self.map_location)
        if saved == "cuda" and devices.is_cuda_available():
            return "cuda"
        return "cpu"

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if isinstance(node, dict) and len(node) >= 1:
            if "__dict__" in node:
                return {self._key(self.decode(k)): self.decode(v) for k, v in node["__dict__"]}
            if "__tuple__" in node:
                return tuple(self.decode(v) for v in node["__tuple__"])
            if "__tensor__" in node:
                a = self._array(node["__tensor__"])
                t = Tensor(devices.to_device(a, self._device(node.get("device", "cpu"))))
                if node.get("requires_grad") and dtypes.is_floating(a.dtype):
                    t.requires_grad_(True)
                return t
            if "__ndarray__" in node:
                a = self._array(node["__ndarray__"])
                return devices.to_device(a, self.map_location) if self.map_location else a
            if "__scalar__" in node:
                return self._array(node["__scalar__"])[()]
            if "__float__" in node:
                return float(node["__float__"])
        raise CheckpointError(f"mc.load: {self.name}: unknown node in the header: {node!r:.80}")

    @staticmethod
    def _key(k):
        return tuple(k) if isinstance(k, list) else k


def _format(f, format):  # noqa: A002
    if format is None:
        path = "" if hasattr(f, "write") or hasattr(f, "read") else os.fspath(f)
        return "safetensors" if str(path).endswith(".safetensors") else "minicnn"
    if format not in ("minicnn", "safetensors"):
        raise ValueError(f"format must be 'minicnn' or 'safetensors', got {format!r}")
    return format


def load(f, map_location=None, weights_only=True, format=None):  # noqa: A002
    """Load what mc.save wrote. map_location: 'cpu' or 'cuda' to put every tensor there; None
    puts each tensor back on its saved device when that device exists, else on the CPU.
    format='safetensors' (the default for a path ending in .safetensors) reads a safetensors
    file's {name: Tensor} dict. Raises CheckpointError for a truncated, corrupt or foreign
    file."""
    if _format(f, format) == "safetensors":
        return load_safetensors(f, device=map_location or "cpu")
    name = repr(os.fspath(f)) if not hasattr(f, "read") else "the file object"
    if hasattr(f, "read"):
        f = io.BytesIO(f.read())
    header, arrays = _read(f, name)
    return _Decoder(arrays, map_location, name).decode(header["object"])


# --- safetensors ------------------------------------------------------------------------------
# Hugging Face's format, which PyTorch, JAX and most model hubs read: one flat {name: tensor} dict
# as a JSON header (dtype, shape and byte range of each tensor, optional {str: str} metadata) and
# the raw little-endian bytes, nothing executable; read and written by the `safetensors` package
# (the [safetensors] extra), imported only here. Tensors keep their shape (0-d included) and
# dtype (bool, the int and uint widths, float16/32/64; bfloat16, which NumPy lacks, is refused).

def _require():
    try:
        import safetensors.numpy  # noqa: PLC0415
    except ImportError:
        raise ImportError("safetensors files need the safetensors package: pip install "
                          "'minicnn[safetensors]' (or pip install safetensors)") from None
    return safetensors


def _host_array(value, key):
    if isinstance(value, Tensor):
        a = value.array
    elif hasattr(value, "detach") and hasattr(value, "numpy"):    # a torch tensor
        a = value.detach().cpu().numpy()
    else:
        a = value
    if not hasattr(a, "dtype"):
        raise TypeError(f"save_safetensors: {key!r} is a {type(value).__name__}, not a tensor or "
                        "array (a safetensors file holds one flat dict of tensors: save the "
                        "model's state_dict(), or use mc.save for nested checkpoints)")
    a = devices.to_numpy(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"save_safetensors: {key!r} has dtype {a.dtype}, which safetensors "
                        "cannot hold")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a if a.flags.c_contiguous else numpy.array(a, order="C")  # (keeps 0-d arrays 0-d)


def save_safetensors(state_dict, path, metadata=None):
    """Write a flat {str: Tensor or array} dict (a state dict) to `path` as a safetensors file,
    atomically. metadata: an optional {str: str} dict stored in the header."""
    st = _require()
    if not hasattr(state_dict, "items"):
        raise TypeError(f"save_safetensors: expected a dict of tensors (a state dict), got "
                        f"{type(state_dict).__name__}")
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save_safetensors: keys must be strings, got {key!r}")
        arrays[key] = _host_array(value, key)
    if metadata is not None:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"save_safetensors: metadata must map str to str; not so for {bad}")
        metadata = dict(metadata)
    data = st.numpy.save(arrays, metadata=metadata)
    if hasattr(path, "write"):
        path.write(data)
        return path
    return write_atomic(path, data)


def load_safetensors(path, device="cpu", return_metadata=False):
    """The {name: Tensor} dict of a safetensors file (on `device`), in the file's order; with
    return_metadata=True also its metadata dict ({} when it has none). A file that is not a
    readable safetensors file raises CheckpointError."""
    st = _require()
    device = devices.normalize_device(device)
    name = "the file object" if hasattr(path, "read") else repr(str(path))
    arrays = collections.OrderedDict()
    try:
        if hasattr(path, "read"):
            data = path.read()
            for key, a in st.numpy.load(data).items():
                if a.dtype.kind not in "biuf":
                    raise CheckpointError(f"cannot read {key!r} of {name}: dtype {a.dtype} "
                                          "(minicnn computes in NumPy's dtypes)")
                arrays[key] = a
            metadata = _header_metadata(data)
        else:
            with st.safe_open(path, framework="numpy") as f:
                metadata = f.metadata() or {}
                for key in f.keys():
                    arrays[key] = _get(f, key, name)
    except (CheckpointError, FileNotFoundError):
        raise
    except Exception as e:      # SafetensorError: a truncated or foreign file
        raise CheckpointError(f"cannot read {name} as a safetensors file: {e}") from None
    out = collections.OrderedDict(
        (k, Tensor(devices.to_device(a, device) if device != "cpu" else a))
        for k, a in arrays.items())
    return (out, dict(metadata)) if return_metadata else out


def _get(f, key, name):
    try:
        a = f.get_tensor(key)
    except (TypeError, ValueError) as e:
        a, why = None, str(e)
    if a is not None and a.dtype.kind in "biuf":
        return a
    # bfloat16 / float8: NumPy has no such dtype (ml_dtypes, when something imported it, gives
    # arrays minicnn cannot compute with)
    why = f"dtype {a.dtype}" if a is not None else why
    raise CheckpointError(f"cannot read {key!r} of {name}: {why} (minicnn computes in NumPy's "
                          "dtypes, which have no bfloat16: convert it to float32 where it was "
                          "saved)")


def _header_metadata(data):
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]).get("__metadata__", {})
