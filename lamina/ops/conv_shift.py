"""Stride-1 convolution as a sum of shifted matrix products, without a patch matrix.

A chunk of ``m`` images is stored channel-major, ``(C, m * P)``, each image on a grid
``Z = S + b`` where ``b = max(pad before, pad after)`` zero rows/columns follow the data
in every dimension. Those trailing zeros also serve as the leading padding of the next
row (and the next image), so the layout needs no separate border on each side. An output
position ``q`` on the same grid then reads the input at ``q + off_k`` for kernel offset
``k``, one fixed shift for the whole chunk, and

    Y[:, q] = sum_k  W_k @ X[:, q + off_k]          W_k = weight[:, :, k]: (Co, C)

is ``prod(K)`` BLAS products with ``beta = 1`` on shifted views of one buffer (``blas``).
Positions off the output grid are computed too (about ``prod(Z) / prod(O)``, 7-15 % for
3x3 'same' layers) and cropped. The input gradient is the same sum run backwards over the
output gradient placed on that grid (zeros off it): ``dX[:, p] = sum_k W_k^T G[:, p -
off_k]``; the weight gradient is ``G @ patches^T`` with the patches copied from the same
buffer (each patch row one contiguous run of the whole chunk).

Against the im2col engine in ``conv`` this skips the ``prod(K)``-fold patch copy in the
forward and in the input gradient: the wide CNN's 3x3 layers took 0.83-0.97x the im2col
engine's time, forward and backward (``benchmarks/bench_conv.py``, benchmarks/RESULTS.md).
``conv._engine`` uses it for stride 1 and one group, per phase: the forward when the layer
has at least ``conv._SHIFT_MIN`` input channels, the input gradient when it has that many
output channels (fewer make products with too short an inner dimension), the weight
gradient when both hold.
"""
import itertools

from .. import backend as B
from . import blas


# elements of one chunk's grids for layers with at least GRID_WIDE_MIN input and output
# channels. Larger chunks than the patch matrices' 2^20 / prod(K) make fewer, longer
# products: measured on the 2-vCPU VM (benchmarks/RESULTS.md, 2026-12-03, late), the
# wide CNN's 32->32 forward and input gradient ran 0.90-0.92x the time of 4-image chunks
# with 16-32 images, and steadier when the VM was slow (each product ends in a meeting
# of OpenBLAS's threads); the weight gradient stays fastest in small sub-chunks. Narrow
# products (LeNet-5's 6 -> 16 input gradient, 6 x 16 a term) are bound by memory and ran
# ~10% slower in chunks past the cache, so they keep the small ones.
GRID_CHUNK = 1 << 19
GRID_WIDE_MIN = 16


class Layout:
    """The shared-border grid of a convolution geometry (see the module docstring).

    Z: per-dimension grid sizes; St: their strides; P: elements per image; offs: the
    shift of each kernel offset (row-major over K); front/tail: zero margins the input
    buffer needs before/after the chunk, gfront/gtail those of the output-gradient buffer.
    """

    __slots__ = ("Z", "St", "P", "offs", "front", "tail", "gfront", "gtail", "nb", "nbw")

    def __init__(self, geo, chunk):
        D = len(geo.S)
        b = [max(lo, hi) for lo, hi in geo.pad]
        self.Z = Z = tuple(s + bb for s, bb in zip(geo.S, b))
        St = [1] * D
        for i in range(D - 2, -1, -1):
            St[i] = St[i + 1] * Z[i + 1]
        self.St = St
        self.P = Z[0] * St[0]
        lo = [a for a, _ in geo.pad]
        self.offs = [sum((k * d - l) * t for k, d, l, t in zip(ks, geo.dilation, lo, St))
                     for ks in itertools.product(*map(range, geo.K))]
        self.front = -min(self.offs)             # = sum(lo * St)
        self.tail = max(0, max(self.offs))
        self.gfront, self.gtail = self.tail, self.front
        # images a chunk: the weight gradient's patch copies (prod(K) times the input
        # grid) hold about ``chunk`` elements (nbw images); when both channel counts
        # make wide products, the grids (input, output, their gradients) take larger
        # chunks of about GRID_CHUNK elements and the weight gradient runs in sub-chunks
        self.nbw = max(1, min(geo.N, chunk // max(geo.Kp * geo.C * self.P, 1)))
        self.nb = self.nbw
        if min(geo.C, geo.Co) >= GRID_WIDE_MIN:
            self.nb = max(self.nb, min(geo.N, GRID_CHUNK // (max(geo.C, geo.Co) * self.P)))

    @staticmethod
    def fits(geo):
        """True when every output lies on the grid: min(pad before, after) <= the
        dilated kernel's reach in each dimension (else the im2col engine is used)."""
        return all(min(lo, hi) <= d * (k - 1)
                   for (lo, hi), d, k in zip(geo.pad, geo.dilation, geo.K))


def engine(geo, lay, w, x=None, g=None, want_y=False, want_dx=False, want_dw=False,
           y_bias=None, dx_bias=None):
    """Same contract as ``conv._engine`` (y, dx, dw for one pass over the batch) for a
    stride-1, single-group geometry with layout ``lay``."""
    from .conv import _buffer, _grad_product, _put, _run_chunks
    xp = B.xp
    as_strided = xp.lib.stride_tricks.as_strided
    N, C, Co, K, S, O, D = geo.N, geo.C, geo.Co, geo.K, geo.S, geo.O, len(geo.S)
    Kp, Z, P, offs, nb, nbw = geo.Kp, lay.Z, lay.P, lay.offs, lay.nb, lay.nbw
    dtype = w.dtype
    char, isz = dtype.char, dtype.itemsize
    gemm = blas.gemm
    all_ = (slice(None), slice(None))
    data_crop = all_ + tuple(slice(0, n) for n in S)
    out_crop = all_ + tuple(slice(0, n) for n in O)
    need_x = want_y or want_dw
    need_g = want_dw or want_dx
    # (Kp, Co, C): one contiguous (Co, C) block per kernel offset
    wk = xp.ascontiguousarray(w.reshape(Co, C, Kp).transpose(2, 0, 1))
    wptr = wk.ctypes.data
    wstep = Co * C * isz
    y = xp.empty((N, Co) + O, dtype) if want_y else None
    dx = xp.empty((N, C) + S, dtype) if want_dx else None
    yb = None if y_bias is None else y_bias.reshape((1, Co) + (1,) * D)
    dxb = None if dx_bias is None else dx_bias.reshape((1, C) + (1,) * D)
    if g is not None:
        g_crop = all_ + tuple(slice(0, n) for n in g.shape[2:])
    ldx = lay.front + nb * P + lay.tail
    ldg = lay.gfront + nb * P + lay.gtail
    col_strides = (ldx * isz,) + tuple(d * t * isz for d, t in zip(geo.dilation, lay.St)) \
        + (isz,)

    def images(lo, hi):
        dw = xp.zeros((1, Co, C * Kp), dtype) if want_dw else None
        if need_x:
            xbuf, xgrid, xptr = _zeroed_rows("sx", C, ldx, lay.front, nb * P, dtype)
        if want_y:
            ybuf = _buffer("sy", Co * nb * P, dtype)
            yptr = ybuf.ctypes.data
        if need_g:
            _, ggrid, gptr = _zeroed_rows("sg", Co, ldg, lay.gfront, nb * P, dtype)
        if want_dx:
            dbuf = _buffer("sdx", C * nb * P, dtype)
            dptr = dbuf.ctypes.data
        if want_dw:
            cbuf = _buffer("scols", C * Kp * nbw * P, dtype)
        for n0 in range(lo, hi, nb):
            m = min(nb, hi - n0)
            n1, L = n0 + m, m * P
            if need_x:
                if m < nb:  # a short last chunk: no stale images past its end
                    xgrid[:, L:] = 0
                xgrid[:, :L].reshape((C, m) + Z)[data_crop] = x[n0:n1].swapaxes(0, 1)
            if need_g:
                if m < nb:
                    ggrid[:, L:] = 0
                ggrid[:, :L].reshape((Co, m) + Z)[g_crop] = g[n0:n1].swapaxes(0, 1)
            if want_y:
                for k, off in enumerate(offs):
                    gemm(char, False, False, Co, L, C, wptr + k * wstep, C,
                         xptr + (lay.front + off) * isz, ldx, 0.0 if k == 0 else 1.0,
                         yptr, L)
                src = ybuf[:Co * L].reshape((Co, m) + Z)[out_crop].swapaxes(0, 1)
                _put(y[n0:n1], src, yb)
            if want_dw:
                for i0 in range(0, m, nbw):
                    q0, Lw = i0 * P, (min(m, i0 + nbw) - i0) * P
                    cols = cbuf[:C * Kp * Lw].reshape((C,) + K + (Lw,))
                    xp.copyto(cols, as_strided(xbuf[q0:], cols.shape, col_strides))
                    dw += _grad_product(ggrid[None, :, q0:q0 + Lw],
                                        cols.reshape(1, C * Kp, Lw))
            if want_dx:
                for k, off in enumerate(offs):
                    gemm(char, True, False, C, L, Co, wptr + k * wstep, C,
                         gptr + (lay.gfront - off) * isz, ldg, 0.0 if k == 0 else 1.0,
                         dptr, L)
                src = dbuf[:C * L].reshape((C, m) + Z)[data_crop].swapaxes(0, 1)
                _put(dx[n0:n1], src, dxb)
        return dw

    return y, dx, _run_chunks(images, geo, nb, w.shape, want_dw)


def _zeroed_rows(name, rows, ld, front, width, dtype):
    """A zero-filled scratch buffer of ``rows`` rows of ``ld`` elements: (the flat
    buffer, its (rows, width) grid starting ``front`` into each row, its address)."""
    from .conv import _buffer
    buf = _buffer(name, rows * ld, dtype)
    buf.fill(0)
    return buf, buf.reshape(rows, ld)[:, front:front + width], buf.ctypes.data


def usable(dtype):
    """Whether the shifted products can run for arrays of ``dtype`` on this backend."""
    return blas.gemm is not None and B.name == "numpy" and dtype.char in "fd" \
        and dtype.isnative

