"""Fused single-step recurrent cells: one graph node per step, hand-written backward.

A Python loop over time calls a cell T times, so per-op overhead decides the speed: each
function here records ONE node for the whole step (two matmuls, the gate nonlinearities,
the state update) and its backward computes every gradient in a few NumPy passes.

Shapes (B = batch, I = input features, H = hidden units, G = gates * H):
    x (B, I), h and c (B, H), weight_ih (G, I), weight_hh (G, H), bias_ih and bias_hh (G,).
``h`` / ``c`` may be None (zero state). Gate layouts are PyTorch's: LSTM i, f, g, o;
GRU r, z, n.

Weight gradients are lazy (:class:`~.stacked_grad.StackedParamGrad`): the engine sums the T steps'
contributions by concatenating them, and the parameter's gradient is then ONE matrix
product over all steps (dG_all^T [x_1; ...; x_T]), written straight into the (flat)
gradient storage, instead of T small products and T additions.

Multi-output cells (LSTM) record one node holding ``[h', c']`` stacked as (2, B, H) and
two view nodes for ``h'`` and ``c'``; their gradients meet lazily (:class:`_StateGrad`).
"""
from .. import backend as B
from .. import grad_mode
from ..parallel import matmul as _mm
from ..autograd import engine
from ..autograd.engine import LazyGrad
from ..tensor import plain, result
from .stacked_grad import SharedRows, StackedParamGrad


# ---------------------------------------------------------------- lazy gradients
def _param_grads(gs, a_x, a_h, w_ih, w_hh, b_ih, b_hh, sh=None, sh_h=None, fm=False):
    """Lazy gradients for (weight_ih, weight_hh, bias_ih, bias_hh) from gate gradient(s)
    ``gs`` = (dG for the ih side, dG for the hh side), (B, G) each, or (G, B) with
    ``fm`` (feature-major)."""
    gi, gh = gs
    sh = SharedRows() if sh is None else sh
    sh_h = sh if gh is gi else (SharedRows() if sh_h is None else sh_h)
    dt = gi.dtype
    S = StackedParamGrad
    return (S(sh, [gi], [a_x], w_ih.data.shape, dt, fm) if w_ih is not None else None,
            S(sh_h, [gh], [a_h], w_hh.data.shape, dt, fm) if w_hh is not None else None,
            S(sh, [gi], None, b_ih.data.shape, dt, fm) if b_ih is not None else None,
            S(sh_h, [gh], None, b_hh.data.shape, dt, fm) if b_hh is not None else None)


class _StateGrad(LazyGrad):
    """Gradient of the stacked (2, B, H) state from its h' and c' views; materialized in
    the memory layout of the state itself (``like``), which the cell's backward reads."""

    __slots__ = ("parts", "like", "shape", "dtype")

    def __init__(self, like, k, g):
        self.like, self.shape, self.dtype = like, like.shape, like.dtype
        self.parts = [None, None]
        self.parts[k] = g

    def __add__(self, other):
        if other.__class__ is _StateGrad:
            for k in (0, 1):
                o = other.parts[k]
                if o is not None:
                    s = self.parts[k]
                    self.parts[k] = o if s is None else s + o
            return self
        other = other.materialize() if isinstance(other, LazyGrad) else other
        return self.materialize() + other

    __radd__ = __add__

    def materialize(self):
        out = B.xp.empty_like(self.like)
        self.write_into(out)
        return out

    def write_into(self, out):
        for k in (0, 1):
            p = self.parts[k]
            if p is None:
                out[k] = 0
            else:
                out[k] = p


def _split_state(hc, core_parents, backward):
    """(h', c') views of the stacked state, recorded as one core node and two views."""
    core = result(hc, core_parents, backward)
    h = result(hc[0], (core,), lambda g: (_StateGrad(hc, 0, g),))
    c = result(hc[1], (core,), lambda g: (_StateGrad(hc, 1, g),))
    return h, c


# ---------------------------------------------------------------- helpers
def _data(t):
    return None if t is None else t.data


def _needs(t):
    return t is not None and t.requires_grad


def _check(name, x, h, c, w_ih, w_hh, n_gates):
    """Shape checks shared by the cells (a few tuple comparisons)."""
    xs = x.shape
    gh = w_hh.shape[0]
    hsz = gh // n_gates
    if len(xs) != 2 or xs[1] != w_ih.shape[1]:
        raise ValueError(f"{name}: expected input of shape (batch, {w_ih.shape[1]}), got "
                         f"{tuple(xs)}")
    if w_ih.shape[0] != gh or w_hh.shape[1] != hsz or gh != n_gates * hsz:
        raise ValueError(f"{name}: weight_ih {tuple(w_ih.shape)} and weight_hh "
                         f"{tuple(w_hh.shape)} do not fit {n_gates} gates")
    for what, s in (("hidden state", h), ("cell state", c)):
        if s is not None and s.shape != (xs[0], hsz):
            raise ValueError(f"{name}: expected {what} of shape ({xs[0]}, {hsz}), got "
                             f"{tuple(s.shape)}")
    dt = w_ih.dtype
    for what, a in (("input", x), ("hidden state", h), ("cell state", c)):
        if a is not None and a.dtype != dt:
            raise ValueError(f"{name}: {what} dtype {a.dtype} does not match the parameters' "
                             f"dtype {dt} (convert one, e.g. cell.double() or x.float())")


def _sigmoid_(a):
    """In-place logistic function: 1 / (1 + exp(-a)) (exp overflow to inf gives 0)."""
    xp = B.xp
    xp.negative(a, out=a)
    with xp.errstate(over="ignore"):
        xp.exp(a, out=a)
    a += 1
    xp.reciprocal(a, out=a)


def _gates(x, h, w_ih, w_hh, b_ih, b_hh):
    """x W_ih^T + h W_hh^T + b_ih + b_hh as one fresh (B, G) array."""
    gates = _mm(x, w_ih.T)
    if h is not None:
        gates += _mm(h, w_hh.T)
    if b_ih is not None:
        gates += b_ih + b_hh if b_hh is not None else b_ih
    elif b_hh is not None:
        gates += b_hh
    return gates


def _input_grads(dgi, dgh, w_ih, w_hh, gx, gh):
    return (_mm(dgi, w_ih) if gx else None, _mm(dgh, w_hh) if gh else None)


def _weights_need(w_ih, w_hh, b_ih, b_hh):
    return (w_ih if w_ih.requires_grad else None, w_hh if w_hh.requires_grad else None,
            b_ih if _needs(b_ih) else None, b_hh if _needs(b_hh) else None)


# ---------------------------------------------------------------- Elman RNN
def rnn_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh",
             name="rnn_cell"):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu. One node."""
    xd, hd = x.data, _data(h)
    wi, wh = weight_ih.data, weight_hh.data
    _check(name, xd, hd, None, wi, wh, 1)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{name}: unknown nonlinearity {nonlinearity!r} (tanh or relu)")
    xp = B.xp
    out = _gates(xd, hd, wi, wh, _data(bias_ih), _data(bias_hh))
    tanh = nonlinearity == "tanh"
    if tanh:
        xp.tanh(out, out=out)
    else:
        xp.maximum(out, 0, out=out)
    if not grad_mode.enabled:
        return plain(out)
    gx, gh = x.requires_grad, _needs(h)
    pw = _weights_need(weight_ih, weight_hh, bias_ih, bias_hh)
    if not (gx or gh or any(p is not None for p in pw)):
        return plain(out)

    def backward(g):
        if tanh:
            d = out * out
            xp.subtract(1, d, out=d)
            d *= g
        else:
            d = g * (out > 0)
        dx, dh = _input_grads(d, d, wi, wh, gx, gh)
        ha = hd if hd is not None else xp.zeros((xd.shape[0], wh.shape[1]), dtype=d.dtype)
        return (dx, dh) + _param_grads((d, d), xd, ha, *pw)
    return result(out, (x if gx else None, h if gh else None) + pw, backward)


# ---------------------------------------------------------------- LSTM

def _gates_fm(x, h, w_ih, w_hh, b_ih, b_hh):
    """(x W_ih^T + h W_hh^T + b_ih + b_hh)^T as one fresh (G, B) array. The products are
    formed as W @ x^T: OpenBLAS runs W_hh @ h^T ~2x faster than h @ W_hh^T at RNN sizes
    (B 32, H 256, measured), and each gate becomes a contiguous block of rows."""
    a = _mm(w_ih, x.T)
    if h is not None:
        a += _mm(w_hh, h.T)
    if b_ih is not None:
        b = b_ih + b_hh if b_hh is not None else b_ih
        a += b[:, None]
    elif b_hh is not None:
        a += b_hh[:, None]
    return a


_T_CACHE = {"pass": -1}


def _transposed(*ws):
    """[w_1 | w_2 | ...]^T (the weights side by side, transposed) as one C-contiguous
    array, made once per backward pass (no parameter changes during a pass). With it,
    the input and hidden-state gradients of a cell are ONE product W^T @ dG^T, ~1.3x
    faster than dG @ W_ih and dG @ W_hh apart at the char-LSTM cell's sizes (measured)."""
    if _T_CACHE["pass"] != engine.passes:
        _T_CACHE.clear()
        _T_CACHE["pass"] = engine.passes
    key = tuple(id(w) for w in ws)
    hit = _T_CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], ws)):
        return hit[1]
    wt = B.xp.ascontiguousarray(B.xp.concatenate(ws, axis=1).T) if len(ws) > 1 \
        else B.xp.ascontiguousarray(ws[0].T)
    _T_CACHE[key] = (ws, wt)                # holding the ws keeps their ids from reuse
    return wt


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None, name="lstm_cell"):
    """One LSTM step (PyTorch's LSTMCell); returns (h', c'), each (B, H).

        i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh)  (gate order i, f, g, o)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')

    Forward and backward are computed feature-major (gates (4H, B), see
    :func:`_gates_fm`); h' and c' are (B, H) views of (H, B) arrays, so the next step's
    W_hh @ h'^T reads them contiguously. The gate gradient goes to the stacked weight
    gradients feature-major too (``fm``), untransposed.
    """
    xd, hd, cd = x.data, _data(h), _data(c)
    wi, wh = weight_ih.data, weight_hh.data
    _check(name, xd, hd, cd, wi, wh, 4)
    xp = B.xp
    H = wh.shape[1]
    H2, H3 = 2 * H, 3 * H
    a = _gates_fm(xd, hd, wi, wh, _data(bias_ih), _data(bias_hh))
    # one tanh pass serves all four gates: sigmoid(x) = (tanh(x/2) + 1) / 2 on i, f, o
    sig = (a[:H2], a[H3:])
    for s in sig:
        s *= 0.5
    xp.tanh(a, out=a)
    for s in sig:
        s *= 0.5
        s += 0.5
    i, f, gg, o = a[:H], a[H:H2], a[H2:H3], a[H3:]
    hcT = xp.empty((2, H, xd.shape[0]), dtype=a.dtype)
    hnT, cnT = hcT[0], hcT[1]
    xp.multiply(i, gg, out=cnT)
    cdT = None if cd is None else cd.T
    if cd is not None:
        cnT += f * cdT
    tcT = xp.tanh(cnT)
    xp.multiply(o, tcT, out=hnT)
    hc = hcT.transpose(0, 2, 1)                   # (2, B, H) view
    if grad_mode.enabled:
        gx, gh, gc = x.requires_grad, _needs(h), _needs(c)
        pw = _weights_need(weight_ih, weight_hh, bias_ih, bias_hh)
        if gx or gh or gc or any(p is not None for p in pw):
            def backward(g):
                dhT, dcnT = g[0].T, g[1].T
                dc = tcT * tcT                    # dc = dc' + dh o (1 - tanh(c')^2)
                xp.subtract(1, dc, out=dc)
                dc *= o
                dc *= dhT
                dc += dcnT
                daT = xp.empty_like(a)
                xp.multiply(dc, gg, out=daT[:H])
                if cd is not None:
                    xp.multiply(dc, cdT, out=daT[H:H2])
                else:
                    daT[H:H2] = 0
                xp.multiply(dc, i, out=daT[H2:H3])
                xp.multiply(dhT, tcT, out=daT[H3:])
                t = xp.subtract(1, a)             # activation derivatives
                t *= a                            # s (1 - s) on i, f, o ...
                qg = t[H2:H3]
                xp.multiply(gg, gg, out=qg)
                xp.subtract(1, qg, out=qg)        # ... and 1 - tanh(g)^2 on g
                daT *= t
                dx = dhp = None
                if gx and gh:
                    d = _mm(_transposed(wi, wh), daT)
                    dx, dhp = d[:wi.shape[1]].T, d[wi.shape[1]:].T
                elif gx:
                    dx = _mm(_transposed(wi), daT).T
                elif gh:
                    dhp = _mm(_transposed(wh), daT).T
                ha = hd if hd is not None else xp.zeros((xd.shape[0], H), dtype=daT.dtype)
                dcp = (dc * f).T if gc else None
                return (dx, dhp, dcp) + _param_grads((daT, daT), xd, ha, *pw, fm=True)
            return _split_state(hc, (x if gx else None, h if gh else None,
                                     c if gc else None) + pw, backward)
    return plain(hc[0]), plain(hc[1])


# ---------------------------------------------------------------- GRU
def gru_cell(x, h, weight_ih, weight_hh, bias_ih=None, bias_hh=None, name="gru_cell"):
    """One GRU step (PyTorch's GRUCell), gate order r, z, n:

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
    """
    xd, hd = x.data, _data(h)
    wi, wh = weight_ih.data, weight_hh.data
    _check(name, xd, hd, None, wi, wh, 3)
    xp = B.xp
    H = wh.shape[1]
    bi, bh = _data(bias_ih), _data(bias_hh)
    gi = _mm(xd, wi.T)
    if bi is not None:
        gi += bi
    if hd is not None:
        ghh = _mm(hd, wh.T)
        if bh is not None:
            ghh += bh
    elif bh is not None:
        ghh = xp.broadcast_to(bh, gi.shape)
    else:
        ghh = None
    rz = gi[:, :2 * H]
    if ghh is not None:
        rz += ghh[:, :2 * H]
    _sigmoid_(rz)
    r, z = rz[:, :H], rz[:, H:]
    ghn = ghh[:, 2 * H:] if ghh is not None else None
    n = gi[:, 2 * H:]
    if ghn is not None:
        n += r * ghn
    xp.tanh(n, out=n)
    if hd is not None:
        out = hd - n
        out *= z
        out += n
    else:
        out = 1 - z
        out *= n
    if not grad_mode.enabled:
        return plain(out)
    gx, gh = x.requires_grad, _needs(h)
    pw = _weights_need(weight_ih, weight_hh, bias_ih, bias_hh)
    if not (gx or gh or any(p is not None for p in pw)):
        return plain(out)

    def backward(g):
        dgi = xp.empty_like(gi)
        dr, dz, dn = dgi[:, :H], dgi[:, H:2 * H], dgi[:, 2 * H:]
        xp.subtract(1, z, out=dn)                 # dn_pre = g (1 - z) (1 - n^2)
        dn *= g
        t = n * n
        xp.subtract(1, t, out=t)
        dn *= t
        if hd is not None:                        # dz_pre = g (h - n) z (1 - z)
            xp.subtract(hd, n, out=dz)
        else:
            xp.negative(n, out=dz)
        dz *= g
        t = xp.subtract(1, rz)                    # both sigmoid derivatives at once
        t *= rz
        dz *= t[:, H:]
        if ghn is not None:                       # dr_pre = dn_pre (W_hn h + b_hn) r (1 - r)
            xp.multiply(dn, ghn, out=dr)
            dr *= t[:, :H]
        else:
            dr[...] = 0
        dgh = dgi.copy()
        dgh[:, 2 * H:] *= r
        dx = _mm(dgi, wi) if gx else None
        dhp = None
        if gh:
            dhp = _mm(dgh, wh)
            dhp += g * z
        ha = hd if hd is not None else xp.zeros((xd.shape[0], H), dtype=g.dtype)
        return (dx, dhp) + _param_grads((dgi, dgh), xd, ha, *pw)
    return result(out, (x if gx else None, h if gh else None) + pw, backward)


# ---------------------------------------------------------------- peephole LSTM
def peephole_lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf,
                       weight_co, name="peephole_lstm_cell"):
    """One LSTM step with diagonal peephole connections (Graves 2013, eqs. 7-11):

        i = sigmoid(W_xi x + W_hi h + w_ci * c + b_i)
        f = sigmoid(W_xf x + W_hf h + w_cf * c + b_f)
        c' = f * c + i * tanh(W_xc x + W_hc h + b_c)
        o = sigmoid(W_xo x + W_ho h + w_co * c' + b_o)
        h' = o * tanh(c')

    weight_ih / weight_hh hold the gate rows in PyTorch's order i, f, g (= c), o; b = b_ih +
    b_hh; w_ci, w_cf, w_co are (H,) vectors. Returns (h', c').
    """
    xd, hd, cd = x.data, _data(h), _data(c)
    wi, wh = weight_ih.data, weight_hh.data
    _check(name, xd, hd, cd, wi, wh, 4)
    xp = B.xp
    H = wh.shape[1]
    for nm, w in (("weight_ci", weight_ci), ("weight_cf", weight_cf), ("weight_co", weight_co)):
        if w.shape != (H,):
            raise ValueError(f"{name}: expected {nm} of shape ({H},), got {tuple(w.shape)}")
    vci, vcf, vco = weight_ci.data, weight_cf.data, weight_co.data
    a = _gates(xd, hd, wi, wh, _data(bias_ih), _data(bias_hh))
    if cd is not None:
        a[:, :H] += vci * cd
        a[:, H:2 * H] += vcf * cd
    _sigmoid_(a[:, :2 * H])
    i, f, gg, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    xp.tanh(gg, out=gg)
    hc = xp.empty((2, xd.shape[0], H), dtype=a.dtype)
    hn, cn = hc[0], hc[1]
    xp.multiply(i, gg, out=cn)
    if cd is not None:
        cn += f * cd
    o += vco * cn
    _sigmoid_(o)
    tc = xp.tanh(cn)
    xp.multiply(o, tc, out=hn)
    if grad_mode.enabled:
        gx, gh, gc = x.requires_grad, _needs(h), _needs(c)
        pw = _weights_need(weight_ih, weight_hh, bias_ih, bias_hh)
        pp = tuple(w if w.requires_grad else None for w in (weight_ci, weight_cf, weight_co))
        if gx or gh or gc or any(p is not None for p in pw + pp):
            def backward(g):
                dh, dcn = g[0], g[1]
                da = xp.empty_like(a)
                di, df, dg, do = da[:, :H], da[:, H:2 * H], da[:, 2 * H:3 * H], da[:, 3 * H:]
                xp.multiply(dh, tc, out=do)       # do_pre = dh tanh(c') o (1 - o)
                do *= o
                do *= 1 - o
                dc = tc * tc                      # dc = dc' + dh o (1 - tanh^2 c') + do_pre w_co
                xp.subtract(1, dc, out=dc)
                dc *= o
                dc *= dh
                dc += dcn
                dc += do * vco
                xp.multiply(dc, gg, out=di)
                di *= i
                di *= 1 - i
                if cd is not None:
                    xp.multiply(dc, cd, out=df)
                    df *= f
                    df *= 1 - f
                else:
                    df[...] = 0
                xp.multiply(dc, i, out=dg)
                dg *= 1 - gg * gg
                dx, dhp = _input_grads(da, da, wi, wh, gx, gh)
                dcp = None
                if gc:
                    dcp = dc * f
                    dcp += di * vci
                    dcp += df * vcf
                cp = cd if cd is not None else xp.zeros_like(cn)
                dpp = ((di * cp).sum(0) if pp[0] is not None else None,
                       (df * cp).sum(0) if pp[1] is not None else None,
                       (do * cn).sum(0) if pp[2] is not None else None)
                ha = hd if hd is not None else xp.zeros((xd.shape[0], H), dtype=da.dtype)
                return (dx, dhp, dcp) + _param_grads((da, da), xd, ha, *pw) + dpp
            return _split_state(hc, (x if gx else None, h if gh else None,
                                     c if gc else None) + pw + pp, backward)
    return plain(hn), plain(cn)


# ---------------------------------------------------------------- leaky integration
def leaky_rnn_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh, alpha, name="leaky_rnn_cell"):
    """Leaky-integration unit: h' = (1 - alpha) * h + alpha * tanh(x W_ih^T + b_ih +
    h W_hh^T + b_hh), ``alpha`` of shape (H,) (one time constant per unit)."""
    xd, hd = x.data, _data(h)
    wi, wh = weight_ih.data, weight_hh.data
    _check(name, xd, hd, None, wi, wh, 1)
    xp = B.xp
    H = wh.shape[1]
    if alpha.shape != (H,):
        raise ValueError(f"{name}: expected alpha of shape ({H},), got {tuple(alpha.shape)}")
    al = alpha.data
    u = _gates(xd, hd, wi, wh, _data(bias_ih), _data(bias_hh))
    xp.tanh(u, out=u)
    if hd is not None:
        out = u - hd
        out *= al
        out += hd
    else:
        out = u * al
    if not grad_mode.enabled:
        return plain(out)
    gx, gh, ga = x.requires_grad, _needs(h), alpha.requires_grad
    pw = _weights_need(weight_ih, weight_hh, bias_ih, bias_hh)
    if not (gx or gh or ga or any(p is not None for p in pw)):
        return plain(out)

    def backward(g):
        d = u * u                                 # d_pre = g alpha (1 - u^2)
        xp.subtract(1, d, out=d)
        d *= al
        d *= g
        dx, dhp = _input_grads(d, d, wi, wh, gx, gh)
        if gh:
            dhp += g * (1 - al)
        dal = None
        if ga:
            dal = (u - hd) if hd is not None else u.copy()
            dal *= g
            dal = dal.sum(0)
        ha = hd if hd is not None else xp.zeros((xd.shape[0], H), dtype=d.dtype)
        return (dx, dhp) + _param_grads((d, d), xd, ha, *pw) + (dal,)
    return result(out, (x if gx else None, h if gh else None) + pw + (alpha if ga else None,),
                  backward)
