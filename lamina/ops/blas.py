"""Direct calls to the general matrix multiply of the OpenBLAS that NumPy's wheels bundle.

``numpy.matmul`` cannot accumulate into its output (BLAS's ``beta = 1``) nor take a
matrix that starts part-way into a buffer row with a leading dimension longer than its
width unless it is a view, and a sum of products then costs one extra pass over the
output per term. The shifted-product convolution (``conv_shift``) is exactly such a sum,
so it calls ``cblas_?gemm`` through ctypes (which releases the GIL during the call).

``gemm`` is None when the library or its symbols are not found (another BLAS, a NumPy
built from source, a non-NumPy backend): callers then use their NumPy path.
"""
import ctypes
import glob
import os

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _load():
    """``{dtype char: cblas function}`` from NumPy's bundled OpenBLAS, or None."""
    import numpy
    libs = os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # ILP64 builds (NumPy's wheels) take 64-bit integers; LP64 ones 32-bit
        for prefix, suffix, int_t in (("scipy_cblas_", "64_", ctypes.c_int64),
                                      ("cblas_", "64_", ctypes.c_int64),
                                      ("scipy_cblas_", "", ctypes.c_int),
                                      ("cblas_", "", ctypes.c_int)):
            fns = {}
            for char, real in (("f", ctypes.c_float), ("d", ctypes.c_double)):
                fn = getattr(lib, f"{prefix}{'s' if char == 'f' else 'd'}gemm{suffix}", None)
                if fn is None:
                    break
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, int_t,
                               real, ctypes.c_void_p, int_t, ctypes.c_void_p, int_t, real,
                               ctypes.c_void_p, int_t]
                fn.restype = None
                fns[char] = fn
            if len(fns) == 2:
                return fns
    return None


_fns = _load()


def _gemm(char, trans_a, trans_b, M, N, K, a, lda, b, ldb, beta, c, ldc):
    """c = op(a) @ op(b) + beta * c on raw row-major buffers (addresses in bytes):
    op(a) is (M, K), op(b) is (K, N), c is (M, N); ``trans_*`` say the stored matrix is
    the transpose; lda/ldb/ldc are row strides in elements. ``char`` is the dtype's
    ``'f'`` or ``'d'``."""
    _fns[char](_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS,
               M, N, K, 1.0, a, lda, b, ldb, beta, c, ldc)


gemm = _gemm if _fns is not None else None
