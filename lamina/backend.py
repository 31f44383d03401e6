"""The array namespace every op goes through, the dtypes, and the random generator.

Ops never import numpy themselves: they call ``backend.xp`` so that the same code can
run on CuPy once :func:`set_backend` selects it.
"""
import numpy

xp = numpy
name = "numpy"

float16 = numpy.dtype("float16")
float32 = numpy.dtype("float32")
float64 = numpy.dtype("float64")
int8 = numpy.dtype("int8")
int16 = numpy.dtype("int16")
int32 = numpy.dtype("int32")
int64 = numpy.dtype("int64")
uint8 = numpy.dtype("uint8")
bool_ = numpy.dtype("bool")

_default_float = float32


def set_backend(backend_name):
    """Select the array library: ``'numpy'`` (default) or ``'cupy'`` (if installed)."""
    global xp, name
    if backend_name == "numpy":
        xp, name = numpy, "numpy"
    elif backend_name == "cupy":
        try:
            import cupy
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise RuntimeError("set_backend('cupy'): CuPy is not installed") from exc
        xp, name = cupy, "cupy"
    else:
        raise ValueError(f"set_backend: unknown backend {backend_name!r} (use 'numpy' or 'cupy')")
    manual_seed(_seed)


def get_default_dtype():
    return _default_float


def set_default_dtype(dtype):
    """Set the dtype of new floating-point tensors (float32 unless changed)."""
    global _default_float
    dtype = numpy.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_float = dtype


def to_dtype(dtype):
    """Normalise anything dtype-like (``lamina.float32``, ``'float32'``, ``float``) to a numpy dtype."""
    if dtype is None:
        return None
    if dtype is float:
        return _default_float
    return numpy.dtype(dtype)


def is_float(dtype):
    return dtype.kind == "f"


# ---------------------------------------------------------------- randomness
_seed = None
_rng = numpy.random.default_rng()


def manual_seed(seed):
    """Make every random draw in lamina (init, dropout, shuffling, ...) reproducible."""
    global _seed, _rng
    _seed = seed
    _rng = xp.random.default_rng(seed) if seed is not None else xp.random.default_rng()
    return _rng


def rng():
    """The generator all of lamina draws from."""
    return _rng


def asarray(data, dtype=None):
    return xp.asarray(data, dtype=dtype)
