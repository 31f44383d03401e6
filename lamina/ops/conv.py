"""N-d convolution (1-D, 2-D, 3-D) and its transpose: one primitive, forward and backward.

Everything runs through :func:`_engine`, which walks the batch in chunks sized so that a
chunk's patch matrix (im2col) stays in cache:

- forward: the chunk is copied into a zero-bordered buffer ``(m, C, *padded)``; a strided
  view of it is the patch matrix ``(C, *K, m, *grid)``, copied once, and ONE matrix multiply
  ``(Co, C*K) @ (C*K, m*grid)`` gives the outputs (a stack of ``groups`` products for
  grouped convolutions, no loop over groups);
- weight gradient: ``g @ patches^T``, one matrix multiply per chunk (patches rebuilt from
  the input instead of kept, so a convolution saves nothing but its input);
- input gradient, two ways: col2im (``W^T @ g`` is the gradient of the patch matrix, added
  back into the padded input by ``prod(K)`` shifted strided slices: any stride), or, for
  stride 1 and at least 16 input channels a group, the correlation of the zero-bordered
  ``g`` with the flipped kernel, computed exactly like the forward (patch copy + one
  product), which measured 1.3-1.5x faster there than the product with only Co inner
  terms plus the prod(K) additions.

For stride-1, single-group convolutions, ``_engine`` hands the phases whose products have
at least ``_SHIFT_MIN`` inner terms (the forward: input channels; the input gradient:
output channels; the weight gradient: both) to ``conv_shift``, which computes them as
sums of shifted BLAS products without a patch copy. A forward left to this engine with
at least ``_BY_IMAGE_MIN`` outputs an image runs one product per image, straight into
the output.

A transposed convolution is the input gradient of a convolution; its backward is that
convolution's forward (to its input) and weight gradient, so it reuses the same engine.

When the last two strides are 1 the output grid spans the whole padded width: each patch
row is then one contiguous run of memory (fast copies), at the price of a few discarded
columns; those columns are cut away in the forward and get a zero gradient in backward.
"""
import itertools
import math
import threading

from .. import backend as B
from .. import grad_mode, parallel
from ..tensor import Tensor, plain, result
from . import conv_shift

# elements of one chunk's patch matrix (4 MiB in float32): measured fastest at 2^19..2^21
_CHUNK = 1 << 20
# scratch buffers up to this many elements are kept between calls: fresh multi-MiB
# buffers cost page faults that took longer than the copies written into them
_KEEP = 1 << 21
_scratch = threading.local()
_CORR = None  # None: choose the input-gradient method by shape; True/False force one (tests)
# stride-1 single-group convolutions run as shifted products (conv_shift): the forward
# when the input has at least this many channels (the products' inner dimension), the
# input gradient when the output has, the weight gradient when both have (else im2col);
# _SHIFT None/True/False: by shape / every phase wherever possible / never
_SHIFT_MIN = 16
_SHIFT = None
# im2col forwards with at least this many outputs an image run one product per image
# straight into y, without a cropped grid to copy out (benchmarks/bench_conv.py: faster
# for 28x28 outputs, slower for LeNet-5's 10x10 ones, which stay chunk-wide)
_BY_IMAGE_MIN = 256


def _buffer(name, n, dtype):
    """A flat scratch array of ``n`` elements (contents undefined), reused across calls."""
    cache = getattr(_scratch, "bufs", None)
    if cache is None:
        cache = _scratch.bufs = {}
    buf = cache.get((name, dtype))
    if buf is None or buf.size < n:
        buf = B.xp.empty(n, dtype)
        if n <= _KEEP:
            cache[(name, dtype)] = buf
    return buf[:n]


class _Geometry:
    """Shapes of a convolution of ``(N, C, *S)`` by ``(Co, C/groups, *K)`` producing
    ``(N, Co, *O)``; all tuples have one entry per spatial dimension.

    Inside a chunk an image is a flat block of ``P = prod(padded S)`` elements with strides
    ``St``; output position o sits at block offset ``sum(o * stride * St)`` and reads the
    patch at offsets ``sum(k * dilation * St)`` from there.
    """

    __slots__ = ("N", "C", "S", "Co", "K", "stride", "dilation", "pad", "groups", "O", "Sp",
                 "St", "P", "Og", "Kp", "Ogp", "tail", "nb", "corr", "front", "Qg", "Qgp",
                 "q0", "qcrop", "shift", "shift_y", "shift_dx")

    def __init__(self, N, C, S, Co, K, stride, dilation, pad, groups, O):
        self.N, self.C, self.S, self.Co, self.K = N, C, S, Co, K
        self.stride, self.dilation, self.pad, self.groups, self.O = \
            stride, dilation, pad, groups, O
        D = len(S)
        self.Sp = Sp = tuple(n + lo + hi for n, (lo, hi) in zip(S, pad))
        St = [1] * D
        for i in range(D - 2, -1, -1):
            St[i] = St[i + 1] * Sp[i + 1]
        self.St = St
        self.P = P = math.prod(Sp)
        full = D >= 2 and stride[-1] == 1 and stride[-2] == 1
        # output grid: whole padded rows when possible, so the last two grid axes merge
        # into one run of memory (the extra columns are discarded)
        self.Og = Og = O[:-1] + (Sp[-1],) if full else O
        self.Kp, self.Ogp = math.prod(K), math.prod(Og)
        reach = sum(((k - 1) * d + (o - 1) * s) * t
                    for k, d, o, s, t in zip(K, dilation, Og, stride, St))
        self.tail = max(0, reach + 1 - P)  # how far the last patch reads past an image
        # stride 1: the input gradient is the correlation of the output gradient, placed
        # `front` elements into the image blocks, with the flipped kernel; computed on the
        # grid Qg (the unpadded input, whole padded rows again) starting at offset q0
        # (measured: faster than col2im from about 16 input channels a group on)
        self.corr = all(s == 1 for s in stride) and C // groups >= 16 if _CORR is None \
            else _CORR
        self.front = sum((k - 1) * d * t for k, d, t in zip(K, dilation, St))
        lo = [a for a, _ in pad]
        if full:
            self.Qg = S[:-1] + (Sp[-1],)
            self.q0 = sum(a * t for a, t in zip(lo[:-1], St[:-1]))
            self.qcrop = tuple(slice(0, n) for n in S[:-1]) + (slice(lo[-1], lo[-1] + S[-1]),)
        else:
            self.Qg = S
            self.q0 = sum(a * t for a, t in zip(lo, St))
            self.qcrop = tuple(slice(0, n) for n in S)
        self.Qgp = math.prod(self.Qg)
        # a chunk's largest scratch array holds about _CHUNK elements: the patch matrix,
        # or the output (gradient) grid when there are more output channels than patch
        # rows (a first layer, 1 -> 32: one 14 MB chunk took fresh, faulting pages each
        # call; in four chunks conv1 of the wide CNN ran 0.83x the time, fwd + bwd)
        per_image = max(self.Kp * C * self.Ogp, Co * self.Ogp,
                        self.Kp * Co * self.Qgp if self.corr else 0)
        chunks = max(1, -(-N // max(1, _CHUNK // max(per_image, 1))))
        self.nb = max(1, -(-N // chunks))  # chunks of equal size
        self.shift = None  # the shifted-product layout, when that engine applies
        self.shift_y = bool(_SHIFT) or C >= _SHIFT_MIN
        self.shift_dx = bool(_SHIFT) or Co >= _SHIFT_MIN
        if _SHIFT is not False and groups == 1 and all(s == 1 for s in stride) \
                and conv_shift.Layout.fits(self) and (self.shift_y or self.shift_dx):
            self.shift = conv_shift.Layout(self, _CHUNK)


# weight-gradient products g @ cols^T with at most this many outputs, over a long inner
# dimension, are cut into pieces of about _PIECE inner terms (a batch of products plus a
# sum): OpenBLAS ran such products 2-4x faster that way here (e.g. 6 x 25 outputs over
# 41k terms: 1.6 ms whole, 0.4 ms in 64 pieces)
_SMALL_OUT = 1024
_PIECE = 640


def _grad_product(g, cols):
    """g @ cols^T for g: (G, Co, L), cols: (G, CK, L) -> (G, Co, CK), possibly a view.

    Formed as (cols @ g^T)^T, which measured 1.3-4x faster in OpenBLAS than g @ cols^T for
    the thin, long products of convolutions (e.g. 16 x 150 outputs over 7k terms: 0.58
    vs 2.7 ms), and in pieces when the output is tiny and the inner dimension long."""
    xp = B.xp
    G, Co, L = g.shape
    CK = cols.shape[1]
    s = L // _PIECE
    if G == 1 and Co * CK <= _SMALL_OUT and s >= 8:
        n = s * _PIECE
        c2, g2 = cols[0], g[0]
        out = xp.matmul(c2[:, :n].reshape(CK, s, _PIECE).transpose(1, 0, 2),
                        g2[:, :n].reshape(Co, s, _PIECE).transpose(1, 2, 0)).sum(0)
        if n < L:
            out += c2[:, n:] @ g2[:, n:].T
        return out.T[None]
    return xp.matmul(cols, g.swapaxes(1, 2)).swapaxes(1, 2)


def _engine(geo, w, x=None, g=None, want_y=False, want_dx=False, want_dw=False,
            y_bias=None, dx_bias=None):
    """Run one pass over the batch in chunks, the batch split between threads.

    x: (N, C, *S) convolution input, needed for ``want_y`` (the convolution) and
    ``want_dw``; g: (N, Co, *O') gradient at the output (O' <= O, missing entries are zero),
    needed for ``want_dx`` and ``want_dw``. Returns (y, dx, dw) with y: (N, Co, *O),
    dx: (N, C, *S), dw: w's shape; biases are added to y / dx when given.
    """
    if geo.shift is not None and conv_shift.usable(w.dtype):
        sy, sdx = want_y and geo.shift_y, want_dx and geo.shift_dx
        sdw = want_dw and geo.shift_y and geo.shift_dx
        if sy or sdx or sdw:
            y, dx, dw = conv_shift.engine(geo, geo.shift, w, x, g, sy, sdx, sdw,
                                          y_bias if sy else None, dx_bias if sdx else None)
            ry, rdx, rdw = want_y and not sy, want_dx and not sdx, want_dw and not sdw
            if ry or rdx or rdw:  # the phases im2col does better
                y2, dx2, dw2 = _im2col_engine(geo, w, x, g, ry, rdx, rdw, y_bias, dx_bias)
                y, dx, dw = (y2 if ry else y), (dx2 if rdx else dx), (dw2 if rdw else dw)
            return y, dx, dw
    return _im2col_engine(geo, w, x, g, want_y, want_dx, want_dw, y_bias, dx_bias)


def _im2col_engine(geo, w, x=None, g=None, want_y=False, want_dx=False, want_dw=False,
                   y_bias=None, dx_bias=None):
    """``_engine`` through patch matrices (see the module docstring)."""
    xp = B.xp
    as_strided = xp.lib.stride_tricks.as_strided
    N, C, Co, G, K, S, Sp, Og, O = geo.N, geo.C, geo.Co, geo.groups, geo.K, geo.S, geo.Sp, \
        geo.Og, geo.O
    P, Kp, Ogp, nb, tail = geo.P, geo.Kp, geo.Ogp, geo.nb, geo.tail
    dtype = w.dtype
    isz = dtype.itemsize
    Cg, Cog = C // G, Co // G
    w3 = w.reshape(G, Cog, Cg * Kp)
    all_ = (slice(None), slice(None))
    interior = all_ + tuple(slice(lo, lo + n) for (lo, _), n in zip(geo.pad, S))
    crop = all_ + tuple(slice(0, n) for n in O)
    patch_strides = tuple(d * t * isz for d, t in zip(geo.dilation, geo.St))
    grid_strides = tuple(s * t * isz for s, t in zip(geo.stride, geo.St))
    need_cols = want_y or want_dw
    corr = want_dx and geo.corr
    need_g = want_dw or (want_dx and not corr)

    y = xp.empty((N, Co) + O, dtype) if want_y else None
    dx = xp.empty((N, C) + S, dtype) if want_dx else None
    if g is not None:
        gcrop = all_ + tuple(slice(0, n) for n in g.shape[2:])
    if need_cols:
        col_strides = (P * isz,) + patch_strides + (C * P * isz,) + grid_strides
    if want_y:
        yb = None if y_bias is None else y_bias.reshape((1, Co) + (1,) * len(O))
    # a forward on its own, one group: per-image products (Co, C*K) @ (C*K, prod(O)) write
    # y in place, with no cropped grid to copy out
    Op = math.prod(O)
    by_image = want_y and not (want_dw or want_dx) and G == 1 and Op >= _BY_IMAGE_MIN
    if by_image:
        yb2 = None if yb is None else yb.reshape(Co, 1)
        icol_strides = (C * P * isz, P * isz) + patch_strides + grid_strides
    if want_dx:
        dxb = None if dx_bias is None else dx_bias.reshape((1, C) + (1,) * len(S))
    if corr:
        front, Qg, Qgp = geo.front, geo.Qg, geo.Qgp
        row = nb * P + front
        gcol_strides = (row * isz,) + patch_strides + (P * isz,) + \
            tuple(t * isz for t in geo.St)
        flip = (slice(None),) * 3 + (slice(None, None, -1),) * len(K)
        wr = w.reshape((G, Cog, Cg) + K)[flip].swapaxes(1, 2).reshape(G, Cg, Cog * Kp)
        qcrop = all_ + geo.qcrop
    elif want_dx:
        offsets = [sum(k * d * t for k, d, t in zip(ks, geo.dilation, geo.St))
                   for ks in itertools.product(*map(range, K))]

    def images(lo, hi):
        """Images [lo, hi) in chunks of nb with this thread's scratch buffers; returns
        their share of the weight gradient (G, Cog, Cg*Kp), or None."""
        dw = xp.zeros((G, Cog, Cg * Kp), dtype) if want_dw else None
        if need_cols:
            xbuf = _buffer("x", nb * C * P + tail, dtype)
            xbuf.fill(0)  # borders and tail stay zero
            cbuf = _buffer("cols", C * Kp * nb * Ogp, dtype)
        if want_y and not by_image:
            obuf = _buffer("out", Co * nb * Ogp, dtype)
        if need_g:
            gbuf = _buffer("g", Co * nb * Ogp, dtype)
            gbuf.fill(0)  # entries off the output grid stay zero
        if corr:
            gpad = _buffer("gpad", Co * row, dtype)
            gpad.fill(0)
            gpad_rows = gpad.reshape(Co, row)
            gbase = gpad[geo.q0:]
            gcbuf = _buffer("gcols", Co * Kp * nb * Qgp, dtype)
            dgbuf = _buffer("dxg", C * nb * Qgp, dtype)
        elif want_dx:
            dbuf = _buffer("dcols", C * Kp * nb * Ogp, dtype)
            dxbuf = _buffer("dx", nb * C * P + tail, dtype)

        for n0 in range(lo, hi, nb):
            m = min(nb, hi - n0)
            n1 = n0 + m
            if by_image:  # the forward alone: one product per image, straight into y
                xbuf[:m * C * P].reshape((m, C) + Sp)[interior] = x[n0:n1]
                icols = cbuf[:m * C * Kp * Op].reshape((m, C) + K + O)
                xp.copyto(icols, as_strided(xbuf, icols.shape, icol_strides))
                ym = y[n0:n1].reshape(m, Co, Op)
                xp.matmul(w3[0], icols.reshape(m, C * Kp, Op), out=ym)
                if yb2 is not None:
                    ym += yb2
                continue
            if need_cols:  # the patch matrix of the chunk
                xbuf[:m * C * P].reshape((m, C) + Sp)[interior] = x[n0:n1]
                cols = cbuf[:C * Kp * m * Ogp].reshape((C,) + K + (m,) + Og)
                xp.copyto(cols, as_strided(xbuf, cols.shape, col_strides))
                cols = cols.reshape(G, Cg * Kp, m * Ogp)
            if want_y:
                out = obuf[:Co * m * Ogp].reshape(G, Cog, m * Ogp)
                xp.matmul(w3, cols, out=out)
                src = out.reshape((Co, m) + Og)[crop].swapaxes(0, 1)
                _put(y[n0:n1], src, yb)
            if need_g:
                gm = gbuf[:Co * m * Ogp]
                gm.reshape((Co, m) + Og)[gcrop] = g[n0:n1].swapaxes(0, 1)
                gm = gm.reshape(G, Cog, m * Ogp)
            if want_dw:
                dw += _grad_product(gm, cols)
            if not want_dx:
                continue
            if corr:
                gpad_rows[:, front:front + m * P].reshape((Co, m) + Sp)[gcrop] = \
                    g[n0:n1].swapaxes(0, 1)
                gcols = gcbuf[:Co * Kp * m * Qgp].reshape((Co,) + K + (m,) + Qg)
                xp.copyto(gcols, as_strided(gbase, gcols.shape, gcol_strides))
                dxg = dgbuf[:C * m * Qgp].reshape(G, Cg, m * Qgp)
                xp.matmul(wr, gcols.reshape(G, Cog * Kp, m * Qgp), out=dxg)
                src = dxg.reshape((C, m) + Qg)[qcrop].swapaxes(0, 1)
            else:  # col2im: add the patch-matrix gradient back, one kernel offset at a time
                dcols = dbuf[:C * Kp * m * Ogp].reshape(G, Cg * Kp, m * Ogp)
                xp.matmul(w3.swapaxes(1, 2), gm, out=dcols)
                dcols = dcols.reshape((C, Kp, m) + Og)
                region = dxbuf[:m * C * P + tail]
                region.fill(0)
                view_shape = (C, m) + Og
                view_strides = (P * isz, C * P * isz) + grid_strides
                for k, off in enumerate(offsets):
                    as_strided(region[off:], view_shape, view_strides)[...] += dcols[:, k]
                src = region[:m * C * P].reshape((m, C) + Sp)[interior]
            _put(dx[n0:n1], src, dxb)
        return dw

    return y, dx, _run_chunks(images, geo, nb, w.shape, want_dw)


def _put(dst, src, bias):
    """dst = src (+ bias, broadcast) for one chunk's outputs."""
    if bias is None:
        B.xp.copyto(dst, src)
    else:
        B.xp.add(src, bias, out=dst)


def _run_chunks(images, geo, nb, w_shape, want_dw):
    """``images(lo, hi)`` over ``geo``'s batch, an equal share of the images to each
    thread (each walks its share in chunks of ``nb``, the last one maybe short); returns
    the summed weight-gradient shares in ``w_shape``, or None."""
    N = geo.N
    macs = N * geo.Co * (geo.C // geo.groups) * geo.Kp * math.prod(geo.O)
    parts = parallel.split_parts(-(-N // nb), macs)
    cuts = [N * i // parts for i in range(parts + 1)]
    dws = parallel.run_split(lambda i: images(cuts[i], cuts[i + 1]), parts)
    if not want_dw:
        return None
    dw = dws[0]
    for d in dws[1:]:
        dw += d
    return dw.reshape(w_shape)


# ---------------------------------------------------------------- argument handling
def _tuple(v, D, op, what):
    if isinstance(v, (tuple, list)):
        if len(v) != D:
            raise ValueError(f"{op}: {what} must be an int or a tuple of {D} ints, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * D


def _check_common(op, x, weight, bias, D, stride, dilation, groups):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if weight.ndim != D + 2:
        raise ValueError(f"{op}: weight must have {D + 2} dimensions, got shape "
                         f"{tuple(weight.shape)}")
    if x.ndim != D + 2:
        raise ValueError(f"{op}: expected a {D + 2}-D input (N, C{', *spatial' if D else ''}) "
                         f"(or {D + 1}-D without batch) for weight of shape "
                         f"{tuple(weight.shape)}, got input of shape {tuple(x.shape)}")
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"{op}: stride {stride} and dilation {dilation} must be positive")
    if groups < 1:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"{op}: input ({x.dtype}), weight ({weight.dtype})"
                        f"{'' if bias is None else f' and bias ({bias.dtype})'} must have the "
                        f"same dtype")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expects floating-point tensors, got {x.dtype}")


def _check_bias(op, bias, n):
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"{op}: bias must have shape ({n},), got {tuple(bias.shape)}")


def _unbatched(fn, x, *args, **kwargs):
    """``fn`` on ``x`` with a batch dimension of 1 added and removed; an error message
    shows the shape the caller passed, not the one with the added dimension."""
    from .shape import squeeze, unsqueeze
    try:
        out = fn(unsqueeze(x, 0), *args, **kwargs)
    except ValueError as e:
        shape = tuple(x.shape)
        raise ValueError(str(e).replace(str((1,) + shape), str(shape))) from None
    return squeeze(out, 0)


def _needs(*ts):
    return [t is not None and t.requires_grad and grad_mode.enabled for t in ts]


# ---------------------------------------------------------------- convolution
def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, dims=None,
         op=None):
    """N-d cross-correlation as ``torch.nn.functional.conv{1,2,3}d``.

    x: (N, C, *S) or (C, *S); weight: (Co, C/groups, *K); bias: (Co,) or None.
    padding: int, tuple, ``'valid'`` or ``'same'`` (stride 1; for even kernels the extra
    padding goes at the end, as in PyTorch), or one ``(before, after)`` pair a dimension.
    Returns (N, Co, *O) with O = floor((S + pad_before + pad_after - dilation (K - 1) - 1)
    / stride) + 1.
    """
    D = weight.ndim - 2 if dims is None else dims
    op = op or f"conv{D}d"
    if isinstance(x, Tensor) and x.ndim == D + 1 and weight.ndim == D + 2:
        return _unbatched(conv, x, weight, bias, stride, padding, dilation, groups, D, op)
    stride = _tuple(stride, D, op, "stride")
    dilation = _tuple(dilation, D, op, "dilation")
    _check_common(op, x, weight, bias, D, stride, dilation, groups)
    K = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pad = ((0, 0),) * D
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride {stride})")
            pad = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                        for k, d in zip(K, dilation))
        else:
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', "
                             f"got {padding!r}")
    elif isinstance(padding, (tuple, list)) and padding and isinstance(padding[0], (tuple, list)):
        pad = tuple((int(lo), int(hi)) for lo, hi in padding)  # lamina: (lo, hi) per dimension
        if len(pad) != D or any(p < 0 for p in sum(pad, ())):
            raise ValueError(f"{op}: padding must be {D} non-negative (before, after) pairs, "
                             f"got {padding!r}")
    else:
        pad = tuple((p, p) for p in _tuple(padding, D, op, "padding"))
        if any(p < 0 for p, _ in pad):
            raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    N, C, S = x.shape[0], x.shape[1], tuple(x.shape[2:])
    Co = weight.shape[0]
    if Co % groups:
        raise ValueError(f"{op}: groups={groups} must divide the output channels ({Co}, "
                         f"weight shape {tuple(weight.shape)})")
    if weight.shape[1] * groups != C:
        raise ValueError(f"{op}: expected input with {weight.shape[1] * groups} channels "
                         f"(weight {tuple(weight.shape)}, groups={groups}), got input of "
                         f"shape {tuple(x.shape)} with {C} channels"
                         + (f", which groups={groups} does not divide" if C % groups else ""))
    _check_bias(op, bias, Co)
    Sp = tuple(n + lo + hi for n, (lo, hi) in zip(S, pad))
    span = tuple(d * (k - 1) + 1 for k, d in zip(K, dilation))
    if any(a < b for a, b in zip(Sp, span)) or min(K, default=1) < 1:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} (spatial {S}, padded {Sp}) "
                         f"is smaller than the (dilated) kernel {span} of weight "
                         f"{tuple(weight.shape)}")
    O = tuple((a - b) // s + 1 for a, b, s in zip(Sp, span, stride))
    geo = _Geometry(N, C, S, Co, K, stride, dilation, pad, groups, O)
    xd, wd = x.data, weight.data
    y = _engine(geo, wd, x=xd, want_y=True,
                y_bias=None if bias is None else bias.data)[0]
    gx, gw, gb = _needs(x, weight, bias)
    if not (gx or gw or gb):
        return plain(y)
    nd = tuple(range(2, D + 2))

    def backward(g):
        dx = dw = None
        if gx or gw:
            _, dx, dw = _engine(geo, wd, x=xd if gw else None, g=g, want_dx=gx, want_dw=gw)
        return dx, dw, (g.sum(axis=(0,) + nd) if gb else None)
    return result(y, (x if gx else None, weight if gw else None, bias if gb else None),
                  backward)


def conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                   dilation=1, dims=None, op=None):
    """N-d transposed convolution ("deconvolution"), as
    ``torch.nn.functional.conv_transpose{1,2}d``: the gradient of ``conv`` with respect to
    its input.

    x: (N, Cin, *I) or (Cin, *I); weight: (Cin, Cout/groups, *K); bias: (Cout,).
    Returns (N, Cout, *S), S = (I - 1) stride - 2 padding + dilation (K - 1)
    + output_padding + 1.
    """
    D = weight.ndim - 2 if dims is None else dims
    op = op or f"conv_transpose{D}d"
    if isinstance(x, Tensor) and x.ndim == D + 1 and weight.ndim == D + 2:
        return _unbatched(conv_transpose, x, weight, bias, stride, padding, output_padding,
                          groups, dilation, D, op)
    stride = _tuple(stride, D, op, "stride")
    dilation = _tuple(dilation, D, op, "dilation")
    _check_common(op, x, weight, bias, D, stride, dilation, groups)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
    padding = _tuple(padding, D, op, "padding")
    output_padding = _tuple(output_padding, D, op, "output_padding")
    if any(p < 0 for p in padding + output_padding):
        raise ValueError(f"{op}: padding {padding} and output_padding {output_padding} must "
                         f"be non-negative")
    if any(op_ >= s and op_ >= d for op_, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either "
                         f"stride {stride} or dilation {dilation}")
    N, Cin, I = x.shape[0], x.shape[1], tuple(x.shape[2:])
    K = tuple(weight.shape[2:])
    if Cin % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({Cin}, input "
                         f"shape {tuple(x.shape)})")
    if weight.shape[0] != Cin:
        raise ValueError(f"{op}: expected input with {weight.shape[0]} channels (weight "
                         f"{tuple(weight.shape)}), got input of shape {tuple(x.shape)} with "
                         f"{Cin} channels")
    Cout = weight.shape[1] * groups
    _check_bias(op, bias, Cout)
    S = tuple((i - 1) * s - 2 * p + d * (k - 1) + o + 1
              for i, s, p, d, k, o in zip(I, stride, padding, dilation, K, output_padding))
    if any(n < 1 for n in S) or any(i < 1 for i in I):
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} with weight "
                         f"{tuple(weight.shape)} gives an empty output of spatial size {S}")
    # the convolution whose input gradient this is: (N, Cout, *S) -> (N, Cin, *I)
    geo = _Geometry(N, Cout, S, Cin, K, stride, dilation, tuple((p, p) for p in padding),
                    groups, I)
    xd, wd = x.data, weight.data
    y = _engine(geo, wd, g=xd, want_dx=True, dx_bias=None if bias is None else bias.data)[1]
    gx, gw, gb = _needs(x, weight, bias)
    if not (gx or gw or gb):
        return plain(y)
    nd = tuple(range(2, D + 2))

    def backward(g):
        dx = dw = None
        if gx or gw:
            dx, _, dw = _engine(geo, wd, x=g, g=xd if gw else None, want_y=gx, want_dw=gw)
        return dx, dw, (g.sum(axis=(0,) + nd) if gb else None)
    return result(y, (x if gx else None, weight if gw else None, bias if gb else None),
                  backward)
