"""Single-step recurrent cells for Python loops over time: RNNCell, LSTMCell, GRUCell (as in
PyTorch), PeepholeLSTMCell (Graves 2013) and LeakyRNNCell (leaky integration).

Each step is one fused op (:mod:`lamina.ops.rnn_cell`). Input (B, input_size) or unbatched
(input_size,); states (B, hidden_size) or (hidden_size,); a missing state is zeros.
Default initialisation (PyTorch's): every parameter ~ U(-1/sqrt(hidden_size),
1/sqrt(hidden_size)).
"""
import math

from ... import backend as B
from ... import ops
from ...ops import rnn_cell as C
from ...tensor import Parameter, plain
from .. import init
from ..module import Module

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "PeepholeLSTMCell", "LeakyRNNCell"]


class _CellBase(Module):
    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{type(self).__name__}: input_size and hidden_size must be "
                             f"positive, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dt = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        g = self._gates * hidden_size
        self.weight_ih = Parameter(B.xp.empty((g, input_size), dtype=dt))
        self.weight_hh = Parameter(B.xp.empty((g, hidden_size), dtype=dt))
        if bias:
            self.bias_ih = Parameter(B.xp.empty(g, dtype=dt))
            self.bias_hh = Parameter(B.xp.empty(g, dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset_parameters(self):
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _prepare(self, x, states):
        """Check dimensions; promote an unbatched step to a batch of one."""
        name = type(self).__name__
        nd = x.ndim
        if nd == 2:
            for s in states:
                if s is not None and s.ndim != 2:
                    raise ValueError(f"{name}: batched input of shape {tuple(x.shape)} needs "
                                     f"2-D states (batch, {self.hidden_size}), got shape "
                                     f"{tuple(s.shape)}")
            return x, states, False
        if nd != 1:
            raise ValueError(f"{name}: expected input of shape (batch, {self.input_size}) or "
                             f"({self.input_size},), got {tuple(x.shape)}")
        for s in states:
            if s is not None and s.ndim != 1:
                raise ValueError(f"{name}: unbatched input of shape {tuple(x.shape)} needs 1-D "
                                 f"states ({self.hidden_size},), got shape {tuple(s.shape)}")
        one = lambda t: None if t is None else ops.unsqueeze(t, 0)  # noqa: E731
        return one(x), tuple(one(s) for s in states), True

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


def _squeeze(t):
    return ops.squeeze(t, 0)


class RNNCell(_CellBase):
    """Elman cell: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu.

    forward(input (B, I) or (I,), hx (B, H) or (H,) or None) -> h' of hx's shape.
    Parameters: weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,).
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r} (tanh or relu)")
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def forward(self, input, hx=None):
        if input.ndim == 2 and (hx is None or hx.ndim == 2):
            return C.rnn_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih,
                              self.bias_hh, self.nonlinearity, "RNNCell")
        x, (h,), _ = self._prepare(input, (hx,))
        return _squeeze(C.rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih,
                                   self.bias_hh, self.nonlinearity, "RNNCell"))

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity=relu"


class LSTMCell(_CellBase):
    """LSTM cell (PyTorch's LSTMCell), gate rows in the order i, f, g, o:

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)    f = sigmoid(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)       o = sigmoid(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g                             h' = o * tanh(c')

    forward(input (B, I) or (I,), hx=(h, c) or None) -> (h', c').
    Parameters: weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,).
    """

    _gates = 4

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__(input_size, hidden_size, bias, dtype)
        self.reset_parameters()

    def _states(self, hx):
        if hx is None:
            return None, None
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"{type(self).__name__}: hx must be a tuple (h, c) or None, got "
                             f"{type(hx).__name__}")
        return hx[0], hx[1]

    def forward(self, input, hx=None):
        h, c = self._states(hx)
        if input.ndim == 2 and (h is None or h.ndim == 2) and (c is None or c.ndim == 2):
            return C.lstm_cell(input, h, c, self.weight_ih, self.weight_hh, self.bias_ih,
                               self.bias_hh, "LSTMCell")
        x, (h, c), _ = self._prepare(input, (h, c))
        hn, cn = C.lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih,
                             self.bias_hh, "LSTMCell")
        return _squeeze(hn), _squeeze(cn)


class GRUCell(_CellBase):
    """GRU cell (PyTorch's GRUCell), gate rows in the order r, z, n:

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h

    forward(input (B, I) or (I,), hx (B, H) or (H,) or None) -> h'.
    Parameters: weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,).
    """

    _gates = 3

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__(input_size, hidden_size, bias, dtype)
        self.reset_parameters()

    def forward(self, input, hx=None):
        if input.ndim == 2 and (hx is None or hx.ndim == 2):
            return C.gru_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih,
                              self.bias_hh, "GRUCell")
        x, (h,), _ = self._prepare(input, (hx,))
        return _squeeze(C.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih,
                                   self.bias_hh, "GRUCell"))


class PeepholeLSTMCell(LSTMCell):
    """LSTM cell with diagonal peephole connections, the form of Graves (2013), eqs. 7-11:

        i_t = sigmoid(W_xi x_t + W_hi h_{t-1} + w_ci * c_{t-1} + b_i)
        f_t = sigmoid(W_xf x_t + W_hf h_{t-1} + w_cf * c_{t-1} + b_f)
        c_t = f_t * c_{t-1} + i_t * tanh(W_xc x_t + W_hc h_{t-1} + b_c)
        o_t = sigmoid(W_xo x_t + W_ho h_{t-1} + w_co * c_t + b_o)
        h_t = o_t * tanh(c_t)

    The input and forget gates see the previous cell state, the output gate the new one;
    the peephole weights are vectors (each unit sees only its own cell), * is elementwise.
    weight_ih / weight_hh / bias_ih / bias_hh are laid out as in LSTMCell (rows i, f, g, o;
    b = bias_ih + bias_hh), so an LSTMCell state dict plus weight_ci, weight_cf, weight_co
    (each (H,)) loads. All parameters ~ U(-1/sqrt(H), 1/sqrt(H)); with the peephole weights
    set to zero the cell is exactly LSTMCell.

    forward(input (B, I) or (I,), hx=(h, c) or None) -> (h', c').
    """

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        _CellBase.__init__(self, input_size, hidden_size, bias, dtype)
        dt = self.weight_ih.dtype
        self.weight_ci = Parameter(B.xp.empty(hidden_size, dtype=dt))
        self.weight_cf = Parameter(B.xp.empty(hidden_size, dtype=dt))
        self.weight_co = Parameter(B.xp.empty(hidden_size, dtype=dt))
        self.reset_parameters()

    def forward(self, input, hx=None):
        h, c = self._states(hx)
        x, (h, c), unb = self._prepare(input, (h, c))
        hn, cn = C.peephole_lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih,
                                      self.bias_hh, self.weight_ci, self.weight_cf,
                                      self.weight_co, "PeepholeLSTMCell")
        return (_squeeze(hn), _squeeze(cn)) if unb else (hn, cn)


class LeakyRNNCell(_CellBase):
    """Leaky-integration (multiple time-scale) recurrent unit:

        h_t = (1 - alpha) * h_{t-1} + alpha * tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    ``alpha`` (H,) is one integration rate per unit, in (0, 1]: alpha = 1 is the plain
    tanh RNNCell; a small alpha makes a slow unit whose state decays with time constant
    ~1/alpha steps, which carries information (and gradients) over longer spans. Give a
    float (all units alike) or H values (e.g. geometrically spaced, for several time
    scales). ``learn_alpha=True`` makes it a Parameter ``alpha`` (trained as is, not
    clamped: keep it in (0, 1]); otherwise it is a buffer ``alpha``.

    forward(input (B, I) or (I,), hx (B, H) or (H,) or None) -> h'.
    Parameters: weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,), each
    ~ U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, input_size, hidden_size, bias=True, alpha=0.5, learn_alpha=False,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, dtype)
        dt = self.weight_ih.dtype
        a = B.xp.asarray(alpha.data if hasattr(alpha, "data") else alpha, dtype=dt)
        if a.ndim == 0:
            a = B.xp.full(hidden_size, a, dtype=dt)
        if a.shape != (hidden_size,):
            raise ValueError(f"LeakyRNNCell: alpha must be a float or have shape "
                             f"({hidden_size},), got shape {tuple(a.shape)}")
        self.learn_alpha = learn_alpha
        self.reset_parameters()
        if learn_alpha:
            self.alpha = Parameter(a.copy())
        else:
            self.register_buffer("alpha", plain(a.copy()))

    def reset_parameters(self):
        """Weights and biases ~ U(-1/sqrt(H), 1/sqrt(H)); alpha is left as it is."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            if p is not None:
                init.uniform_(p, -k, k)

    def forward(self, input, hx=None):
        x, (h,), unb = self._prepare(input, (hx,))
        out = C.leaky_rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih,
                               self.bias_hh, self.alpha, "LeakyRNNCell")
        return _squeeze(out) if unb else out

    def extra_repr(self):
        return super().extra_repr() + f", learn_alpha={self.learn_alpha}"
