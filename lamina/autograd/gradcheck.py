"""Finite-difference checks of analytic gradients (float64 central differences)."""
from .. import backend as B
from .. import grad_mode
from ..tensor import Tensor, plain
from .engine import execute


class GradcheckError(RuntimeError):
    pass


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    # integer/bool outputs (indices, masks) have no derivative to check
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Compare ``fn``'s analytic vector-Jacobian products with central differences.

    ``inputs``: a tuple of Tensors (checked are those with ``requires_grad``, which must be
    float64). For a random vector v over the outputs, the analytic J^T v (one backward
    pass) must match d(v . fn)/dx_i = (v.fn(x + eps e_i) - v.fn(x - eps e_i)) / (2 eps)
    for every element i of every checked input.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for t in checked:
        if t.dtype != B.float64:
            raise ValueError(f"gradcheck: inputs must be float64, got {t.dtype}")
    rng = B.xp.random.default_rng(seed)
    with grad_mode.enable_grad():
        outs = _outputs(fn, inputs)
    diff_outs = [o for o in outs if o.requires_grad]
    vs = [rng.standard_normal(o.shape) for o in outs]
    if diff_outs:
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        analytic = execute([o for o, _ in pairs], [v.astype(o.dtype) for o, v in pairs],
                           capture=checked)
    else:
        analytic = [None] * len(checked)

    def project(outputs):
        return sum(float((o.data.astype(B.float64) * v).sum()) for o, v in zip(outputs, vs))

    def f_dot_v():  # the numerical passes need no graph
        with grad_mode.no_grad():
            return project(_outputs(fn, inputs))

    for n, (t, a) in enumerate(zip(checked, analytic)):
        a = B.xp.zeros(t.shape) if a is None else a
        if a.shape != t.shape:  # allclose would broadcast a wrong-shaped gradient
            raise GradcheckError(f"gradcheck: the analytic gradient of input {n} has shape "
                                 f"{tuple(a.shape)}, the input has {tuple(t.shape)}")
        if not t.data.flags.c_contiguous:  # reshape(-1) would copy and lose the nudges
            t.data = B.xp.ascontiguousarray(t.data)
        flat = t.data.reshape(-1)
        if not flat.flags.writeable or flat.base is None and t.data.size > 1 and \
                not B.xp.shares_memory(flat, t.data):
            raise ValueError("gradcheck: inputs must be writable contiguous arrays")
        numeric = B.xp.empty(t.data.size)
        for i in range(t.data.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = f_dot_v()
            flat[i] = orig - eps
            minus = f_dot_v()
            flat[i] = orig
            numeric[i] = (plus - minus) / (2 * eps)
        numeric = numeric.reshape(t.shape)
        ok = B.xp.allclose(a, numeric, atol=atol, rtol=rtol, equal_nan=False)
        if not ok:
            if not raise_exception:
                return False
            err = B.xp.abs(a - numeric)
            i = int(B.xp.argmax(err))
            raise GradcheckError(
                f"gradcheck: analytic and numerical gradients differ for input {n} "
                f"(shape {tuple(t.shape)}): max abs error {err.max():.3e} at flat index {i} "
                f"(analytic {a.reshape(-1)[i]:.6e}, numerical {numeric.reshape(-1)[i]:.6e})")
    return True


def gradcheck_inputs(*arrays):
    """float64 leaves requiring grad, built from arrays; a convenience for tests."""
    return tuple(plain(B.xp.array(a, dtype=B.float64)).requires_grad_(True) for a in arrays)
