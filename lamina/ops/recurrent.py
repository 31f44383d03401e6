"""Fused recurrent layers: one primitive per layer and direction over the whole sequence.

``rnn_layer(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse)`` runs an Elman
RNN (``'RNN_TANH'``, ``'RNN_RELU'``), an LSTM or a GRU over a time-major input
x (T, B, I) and returns ``(output (T, B, H), h_n (B, H), c_n (B, H) or None)`` with
PyTorch's equations and gate orders (LSTM i, f, g, o; GRU r, z, n with
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).

Forward: the input projection of all steps is one (T*B, I) @ (I, G*H) GEMM, then one
(B, H) @ (H, G*H) GEMM per step plus a few in-place ufuncs on preallocated buffers (the
LSTM instead runs one feature-major product per step that includes the input, see
:func:`_lstm_forward`).
Backward (BPTT written by hand): one (B, G*H) @ (G*H, H) GEMM per step; the gradients of
x, W_ih, W_hh and the biases are single GEMMs/sums over all steps. The graph holds one
node per layer and direction, so memory is linear in T and nothing recurses.

Variable lengths (torch's packed-sequence semantics): the batch is sorted by length
(descending) so that the sequences still running at step t are the first ``n_t`` rows;
each step only touches those rows. Finished (or, backwards, not yet started) rows keep
their state, padded outputs are zero, and the reverse direction starts every sequence at
its own last valid step.

Internally the gates' rows of the weights are reordered and scaled so that each step
evaluates all gates with one transcendental pass over a contiguous block: the LSTM's with
``tanh`` (sigmoid(x) = (tanh(x/2) + 1) / 2), the GRU's sigmoid gates with ``exp`` of the
negated pre-activations.

All three outputs are views of one packed array (one graph node); their gradients merge
through :class:`~lamina.ops.indexing.SliceGrad`.
"""
from .. import backend as B
from .. import grad_mode
from ..parallel import matmul as _mm
from ..tensor import plain, result
from . import workspace
from .stacked_grad import weight_and_bias_grads
from .shape import _slice

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _sigmoid_of_neg_(a):
    """a <- 1 / (1 + exp(a)) = sigmoid(-a), in place."""
    xp = B.xp
    xp.exp(a, out=a)
    a += 1
    xp.divide(1, a, out=a)


class _Plan:
    """Shapes, the step order and how many (length-sorted) rows run at each step."""

    __slots__ = ("T", "B", "H", "order", "counts", "reverse", "lens", "full", "alloc")

    def __init__(self, T, Bn, H, lens, reverse):
        self.T, self.B, self.H, self.reverse, self.lens = T, Bn, H, reverse, lens
        self.order = range(T - 1, -1, -1) if reverse else range(T)
        if lens is None:
            self.counts = [Bn] * T
            self.full = True
        else:
            t = B.xp.arange(T)
            self.counts = (lens[None, :] > t[:, None]).sum(1).tolist()
            self.full = False
        # rows that never run must hold finite zeros (bulk backward passes read them)
        self.alloc = workspace.empty if self.full else workspace.zeros

    def slots(self, t):
        """(slot read, slot written) of the state buffer Hs (T+1 slots) at step t."""
        return (t + 1, t) if self.reverse else (t, t + 1)

    def start(self, t):
        """Reverse direction: rows [a, b) start at step t (their length is t + 1)."""
        nxt = self.counts[t + 1] if t + 1 < self.T else 0
        return nxt, self.counts[t]

    def prev_slice(self):
        """Slots holding each step's previous state (for W_hh's gradient)."""
        return slice(1, self.T + 1) if self.reverse else slice(0, self.T)

    def out_slice(self):
        return slice(0, self.T) if self.reverse else slice(1, self.T + 1)

    def final(self, Hs, h0):
        """The state after each sequence's last step, (B, H)."""
        if self.reverse:
            n0 = self.counts[0] if self.T else 0
            if n0 < self.B:  # zero-length sequences: the state is h0
                Hs[0, n0:] = h0[n0:]
            return Hs[0]
        if self.full:
            return Hs[self.T]
        return Hs[self.lens, B.xp.arange(self.B)]


def _seed_starts(plan, t, pairs):
    """Reverse direction: rows starting at step t read their initial state."""
    if not plan.full:
        a, b = plan.start(t)
        if a < b:
            for buf, init in pairs:
                buf[t + 1, a:b] = init[a:b]
    elif t == plan.T - 1:
        for buf, init in pairs:
            buf[plan.T] = init


def _input_proj(xd, w, bias, plan, G):
    """All steps' input projections in one GEMM: (T, B, G*H)."""
    T, Bn = plan.T, plan.B
    out = B.xp.empty((T, Bn, G), dtype=xd.dtype)
    _mm(xd.reshape(T * Bn, xd.shape[2]), w.T, out=out.reshape(T * Bn, G))
    if bias is not None:
        out += bias
    return out


def _weight_grad(w, g2, x2):
    """g2^T x2; for a leaf parameter lazily, so the engine can write it straight into the
    (flat) gradient storage."""
    if w._fn is None:
        return weight_and_bias_grads(g2, x2, w.shape)[0]
    return _mm(g2.T, x2)


# ------------------------------------------------------------------ Elman RNN
def _rnn_forward(relu, xd, h0, w_ih, w_hh, b_ih, b_hh, plan, k):
    xp = B.xp
    T, Bn, H = plan.T, plan.B, plan.H
    bias = None if b_ih is None else b_ih + b_hh
    XA = _input_proj(xd, w_ih, bias, plan, H)
    P = plan.alloc((T + 1 + k, Bn, H), dtype=xd.dtype)
    Hs = P[:T + 1]
    if not plan.reverse:
        Hs[0] = h0
    whhT = w_hh.T
    tmp = xp.empty((Bn, H), dtype=xd.dtype)
    rev = plan.reverse
    for t in plan.order:
        n = plan.counts[t]
        if rev:
            _seed_starts(plan, t, ((Hs, h0),))
        rd, wr = plan.slots(t)
        tm = tmp[:n]
        xp.matmul(Hs[rd, :n], whhT, out=tm)
        h = Hs[wr, :n]
        xp.add(XA[t, :n], tm, out=h)
        if relu:
            xp.maximum(h, 0, out=h)
        else:
            xp.tanh(h, out=h)
    P[T + 1] = plan.final(Hs, h0)

    def backward(gout, ghn, gcn):
        Hout = Hs[plan.out_slice()]
        if relu:
            D = (Hout > 0).astype(xd.dtype)
        else:
            D = xp.multiply(Hout, Hout)
            xp.subtract(1, D, out=D)
        dG = plan.alloc((T, Bn, H), dtype=xd.dtype)
        dh = ghn.copy()
        for t in reversed(plan.order):
            n = plan.counts[t]
            d_h = dh[:n]
            if gout is not None:
                d_h += gout[t, :n]
            dg = dG[t, :n]
            xp.multiply(d_h, D[t, :n], out=dg)
            xp.matmul(dg, w_hh, out=d_h)
        return dG, dG, dh, None
    return P, Hs, backward


# ------------------------------------------------------------------ LSTM
def _lstm_forward(xd, h0, c0, w_ih, w_hh, b_ih, b_hh, plan, k, need):
    """Inside both time loops every step's gates and states are held feature-major,
    (4H, B) and (H, B), so the per-step products are W_hh @ h_prev^T (forward) and
    W_hh^T @ dgates (backward): measured ~2x and ~1.3x faster in OpenBLAS than
    h_prev @ W_hh^T and dgates @ W_hh at the char-LSTM's sizes (B 32, H 256), and each
    gate is one contiguous block for the elementwise work. The outputs (and the gate
    gradients the bulk weight products read) are written back batch-major."""
    xp = B.xp
    T, Bn, H = plan.T, plan.B, plan.H
    H2, H3, dt = 2 * H, 3 * H, xd.dtype
    I = xd.shape[2]
    # inside the loops the gate rows are ordered i, f, o, g (the sigmoid gates together)
    # and scaled so that one tanh() pass serves all four: sigmoid(x) = (tanh(x/2) + 1) / 2,
    # so the i, f, o rows are halved
    perm, scale = _lstm_perm_scale(H, dt)
    # one product per step gives the whole pre-activation: [W_hh | W_ih | b] (4H, K) @
    # [h_prev; x_t; 1] (K, B). At the char-LSTM's sizes that product took ~185 us against
    # ~143 us for W_hh @ h_prev alone plus ~50 us (a step's share of one bulk input
    # product) and ~20 us for adding the two (their output is written, not read back).
    # Slot s of Z holds h_s above the input of the step that reads slot s.
    nb = 0 if b_ih is None else 1
    Kz = H + I + nb
    wcat = workspace.empty((4 * H, Kz), dt)
    wcat[:, :H] = w_hh[perm]
    wcat[:, H:H + I] = w_ih[perm]
    if nb:
        wcat[:, H + I] = (b_ih + b_hh)[perm]
    wcat *= scale[:, None]
    Z = plan.alloc((T + 1, Kz, Bn), dtype=dt)
    xin = slice(1, T + 1) if plan.reverse else slice(0, T)
    Z[xin, H:H + I] = xd.transpose(0, 2, 1)
    if nb:
        Z[xin, H + I] = 1
    A = workspace.empty((T, 4 * H, Bn), dt)     # the gate activations i f o g
    Hs = Z[:, :H]
    Cs = plan.alloc((T + 1, H, Bn), dtype=dt)
    HsN, CsN = Hs.transpose(0, 2, 1), Cs.transpose(0, 2, 1)    # batch-major views
    if need:
        # per-step factors of the backward, computed while the step's gates are in cache:
        # d(pre-activations i f g o) = [dc, dc, dc, dh] * Q and dc += dh * K
        Q = plan.alloc((T, 4 * H, Bn), dtype=dt)
        K = plan.alloc((T, H, Bn), dtype=dt)
    if not plan.reverse:
        HsN[0] = h0
        CsN[0] = c0
    tmpH = xp.empty((H, Bn), dtype=dt)
    rev = plan.reverse

    # one pass over time (with lamina threads, _mm cuts the per-step product by gate rows)
    for t in plan.order:
        if rev:
            _seed_starts(plan, t, ((HsN, h0), (CsN, c0)))
        n = plan.counts[t]
        if n == 0:
            continue
        r = slice(0, n)
        rd, wr = plan.slots(t)
        a = A[t, :, r]
        _mm(wcat, Z[rd, :, r], out=a)
        xp.tanh(a, out=a)
        sg = a[:H3]
        sg *= 0.5
        sg += 0.5
        i, f, o, g = a[:H], a[H:H2], a[H2:H3], a[H3:]
        cp = Cs[rd, :, r]
        c = Cs[wr, :, r]
        xp.multiply(f, cp, out=c)
        tc = tmpH[:, r]
        xp.multiply(i, g, out=tc)
        c += tc
        xp.tanh(c, out=tc)
        xp.multiply(o, tc, out=Hs[wr, :, r])
        if need:
            q = Q[t, :, r]                      # PyTorch's order i, f, g, o
            qif = q[:H2]
            xp.subtract(1, a[:H2], out=qif)
            qif *= a[:H2]                       # s (1 - s)
            q[:H] *= g                          # i: g i (1 - i)
            q[H:H2] *= cp                       # f: c_prev f (1 - f)
            qo = q[H3:]
            xp.subtract(1, o, out=qo)
            qo *= o
            qo *= tc                            # o: tanh(c) o (1 - o)
            qg = q[H2:H3]
            xp.multiply(g, g, out=qg)
            xp.subtract(1, qg, out=qg)
            qg *= i                             # g: i (1 - g^2)
            kk = K[t, :, r]
            xp.multiply(tc, tc, out=kk)
            xp.subtract(1, kk, out=kk)
            kk *= o                             # o (1 - tanh(c)^2)
    P = workspace.empty((T + 1 + k, Bn, H), dt)
    P[:T + 1] = HsN
    P[T + 1] = plan.final(HsN, h0)
    P[T + 2] = plan.final(CsN, c0)
    if not need:
        return P, P[:T + 1], None

    def backward(gout, ghn, gcn):
        dG = plan.alloc((T, Bn, 4 * H), dtype=dt)     # batch-major, for the bulk products
        whhT = workspace.empty(w_hh.shape[::-1], dt)
        whhT[...] = w_hh.T
        gT = None
        if gout is not None:
            gT = workspace.empty((T, H, Bn), dt)
            gT[...] = gout.transpose(0, 2, 1)
        dh = xp.ascontiguousarray(ghn.T)
        dc = xp.ascontiguousarray(gcn.T)
        th = xp.empty((H, Bn), dtype=dt)
        dgs = xp.empty((4 * H, Bn), dtype=dt)         # one step's gate gradients
        dgs3 = dgs.reshape(4, H, Bn)[:3]
        Q3 = Q.reshape(T, 4, H, Bn)[:, :3]

        for t in reversed(plan.order):
            n = plan.counts[t]
            if n == 0:
                continue
            r = slice(0, n)
            d_h, d_c, tt, dg = dh[:, r], dc[:, r], th[:, r], dgs[:, r]
            if gT is not None:
                d_h += gT[t, :, r]
            xp.multiply(d_h, K[t, :, r], out=tt)
            d_c += tt
            xp.multiply(d_c[None], Q3[t, :, :, r], out=dgs3[..., r])
            xp.multiply(d_h, Q[t, H3:, r], out=dg[H3:])
            d_c *= A[t, H:H2, r]
            _mm(whhT, dg, out=d_h)
            dG[t, r] = dg.T
        return dG, dG, xp.ascontiguousarray(dh.T), xp.ascontiguousarray(dc.T)
    return P, P[:T + 1], backward


_LSTM_PERM_SCALE = {}


def _lstm_perm_scale(H, dt):
    """Row order i, f, o, g of PyTorch's i, f, g, o blocks, and the factors 1/2 (sigmoid
    gates) and 1 (g) that precede the single tanh pass."""
    key = (H, dt)
    ps = _LSTM_PERM_SCALE.get(key)
    if ps is None:
        xp = B.xp
        r = xp.arange(H)
        perm = xp.concatenate([r, r + H, r + 3 * H, r + 2 * H])
        scale = xp.full(4 * H, 0.5, dtype=dt)
        scale[3 * H:] = 1.0
        ps = _LSTM_PERM_SCALE[key] = (perm, scale)
    return ps


# ------------------------------------------------------------------ GRU
def _gru_forward(xd, h0, w_ih, w_hh, b_ih, b_hh, plan, k):
    xp = B.xp
    T, Bn, H = plan.T, plan.B, plan.H
    H2, dt = 2 * H, xd.dtype
    wih = w_ih.copy()
    wih[:H2] *= -1
    whh = w_hh.copy()
    whh[:H2] *= -1
    bias = b_hn = None
    if b_ih is not None:
        bias = b_ih.copy()
        bias[:H2] += b_hh[:H2]
        bias[:H2] *= -1
        b_hn = b_hh[H2:]
    XA = _input_proj(xd, wih, bias, plan, 3 * H)
    A = plan.alloc((T, Bn, 3 * H), dtype=dt)      # r z n
    GH = plan.alloc((T, Bn, 3 * H), dtype=dt)     # W_hh h (the n part: + b_hn)
    P = plan.alloc((T + 1 + k, Bn, H), dtype=dt)
    Hs = P[:T + 1]
    if not plan.reverse:
        Hs[0] = h0
    whhT = whh.T
    rev = plan.reverse
    with xp.errstate(over="ignore"):
        for t in plan.order:
            n = plan.counts[t]
            if rev:
                _seed_starts(plan, t, ((Hs, h0),))
            rd, wr = plan.slots(t)
            hp = Hs[rd, :n]
            a, gh, xa = A[t, :n], GH[t, :n], XA[t, :n]
            xp.matmul(hp, whhT, out=gh)
            rz = a[:, :H2]
            xp.add(xa[:, :H2], gh[:, :H2], out=rz)
            _sigmoid_of_neg_(rz)
            ghn = gh[:, H2:]
            if b_hn is not None:
                ghn += b_hn
            nn = a[:, H2:]
            xp.multiply(a[:, :H], ghn, out=nn)
            nn += xa[:, H2:]
            xp.tanh(nn, out=nn)
            h = Hs[wr, :n]
            xp.subtract(hp, nn, out=h)
            h *= a[:, H:H2]
            h += nn
    del XA
    P[T + 1] = plan.final(Hs, h0)

    def backward(gout, ghn, gcn):
        r, z, nn = A[..., :H], A[..., H:H2], A[..., H2:]
        Qr = xp.subtract(1, r)
        Qr *= r
        Qr *= GH[..., H2:]                                 # r (1 - r) (W_hn h + b_hn)
        Qz = xp.subtract(Hs[plan.prev_slice()], nn)
        Qz *= z
        Qz *= xp.subtract(1, z)                            # (h_prev - n) z (1 - z)
        Qn = xp.multiply(nn, nn)
        xp.subtract(1, Qn, out=Qn)
        Qn *= xp.subtract(1, z)                            # (1 - n^2)(1 - z)
        dGx = plan.alloc((T, Bn, 3 * H), dtype=dt)
        dGh = plan.alloc((T, Bn, 3 * H), dtype=dt)
        dh = ghn.copy()
        th = xp.empty((Bn, H), dtype=dt)
        for t in reversed(plan.order):
            n = plan.counts[t]
            d_h, tt = dh[:n], th[:n]
            if gout is not None:
                d_h += gout[t, :n]
            dgx, dgh = dGx[t, :n], dGh[t, :n]
            dn = dgx[:, H2:]
            xp.multiply(d_h, Qn[t, :n], out=dn)
            xp.multiply(dn, Qr[t, :n], out=dgh[:, :H])
            xp.multiply(d_h, Qz[t, :n], out=dgh[:, H:H2])
            xp.multiply(dn, r[t, :n], out=dgh[:, H2:])
            xp.matmul(dgh, w_hh, out=tt)
            d_h *= z[t, :n]
            d_h += tt
        dGx[..., :H2] = dGh[..., :H2]
        return dGx, dGh, dh, None
    return P, Hs, backward


# ------------------------------------------------------------------ the op
def rnn_layer(mode, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None,
              reverse=False):
    """One layer and direction of an RNN over a whole sequence.

    mode: 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'. x: (T, B, I) time-major; w_ih: (G*H, I);
    w_hh: (G*H, H); b_ih, b_hh: (G*H,) or None; h0, c0: (B, H) or None (zeros); lengths:
    None or an int array (B,) of valid lengths (0 <= len <= T, any order); reverse: run
    from each sequence's last valid step back to its first.
    Returns (output (T, B, H), h_n (B, H), c_n (B, H) or None); padded outputs are zero.
    Shapes are assumed checked by the caller (the layer modules do).
    """
    xp = B.xp
    xd = B.xp.ascontiguousarray(x.data)
    T, Bn, _ = xd.shape
    H = w_hh.shape[1]
    dt = xd.dtype
    lstm = mode == "LSTM"
    wi, wh = w_ih.data, w_hh.data
    bi = None if b_ih is None else b_ih.data
    bh = None if b_hh is None else b_hh.data
    if bi is not None and bh is None:
        bh = xp.zeros_like(bi)
    elif bh is not None and bi is None:
        bi = xp.zeros_like(bh)
    h0d = xp.zeros((Bn, H), dtype=dt) if h0 is None else h0.data
    c0d = None
    if lstm:
        c0d = xp.zeros((Bn, H), dtype=dt) if c0 is None else c0.data
    inputs = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    need = grad_mode.enabled and any(t is not None and t.requires_grad for t in inputs)

    perm = inv = lens = None
    if lengths is not None:
        lens = xp.asarray(lengths, dtype=B.int64)
        if T and (lens >= T).all():
            lens = None                          # nothing is padded
        elif Bn > 1 and (lens[1:] > lens[:-1]).any():
            perm = xp.argsort(-lens, kind="stable")
            inv = xp.argsort(perm)
            lens = lens[perm]
            xd = xd[:, perm]
            h0d = h0d[perm]
            if lstm:
                c0d = c0d[perm]
    plan = _Plan(T, Bn, H, lens, reverse)
    k = 2 if lstm else 1
    if lstm:
        P, Hs, bwd = _lstm_forward(xd, h0d, c0d, wi, wh, bi, bh, plan, k, need)
    elif mode == "GRU":
        P, Hs, bwd = _gru_forward(xd, h0d, wi, wh, bi, bh, plan, k)
    else:
        P, Hs, bwd = _rnn_forward(mode == "RNN_RELU", xd, h0d, wi, wh, bi, bh, plan, k)
    if reverse and not plan.full:
        # padded slots of Hs held initial states for the backward pass: zero them in a copy
        mask = (xp.arange(T)[:, None] < lens[None, :]).astype(dt)
        P = P.copy()
        P[:T] *= mask[:, :, None]
    if perm is not None:
        P = P[:, inv]
    out_sl = plan.out_slice()

    if not need:
        Pt = plain(P)
    else:
        xd_used = xd

        def backward(g):
            if perm is not None:
                g = g[:, perm]
            gout = g[out_sl]
            gcn = g[T + 2] if lstm else None
            dGx, dGh, dh0, dc0 = bwd(gout, g[T + 1], gcn)
            G = dGx.shape[-1]
            dGx2 = dGx.reshape(T * Bn, G)
            dGh2 = dGh.reshape(T * Bn, G)
            dx = dwi = dwh = dbi = dbh = None
            if x.requires_grad:
                dx = _mm(dGx2, wi).reshape(T, Bn, -1)
            if w_ih.requires_grad:
                dwi = _weight_grad(w_ih, dGx2, xd_used.reshape(T * Bn, -1))
            if w_hh.requires_grad:
                dwh = _weight_grad(w_hh, dGh2, Hs[plan.prev_slice()].reshape(T * Bn, H))
            if b_ih is not None and b_ih.requires_grad:
                dbi = dGx2.sum(0)
            if b_hh is not None and b_hh.requires_grad:
                dbh = dbi if dGh is dGx and dbi is not None else dGh2.sum(0)
            if perm is not None:
                dx = None if dx is None else dx[:, inv]
                dh0 = dh0[inv]
                dc0 = None if dc0 is None else dc0[inv]
            return (dx, dh0 if h0 is not None else None, dc0 if c0 is not None else None,
                    dwi, dwh, dbi, dbh)
        Pt = result(P, inputs, backward)
    out = _slice(Pt, (out_sl,))
    hn = _slice(Pt, (T + 1,))
    cn = _slice(Pt, (T + 2,)) if lstm else None
    return out, hn, cn
