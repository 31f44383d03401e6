"""Multi-layer recurrent layers over whole sequences: RNN (tanh/relu), LSTM, GRU.

Each layer and direction is one fused op (:func:`lamina.ops.recurrent.rnn_layer`).
Names, arguments, shapes, parameter names/layouts and initialisation follow ``torch.nn``,
so a PyTorch ``state_dict`` loads as is.
"""
import math
import warnings

from ... import backend as B
from ... import ops
from ...ops.recurrent import GATES, rnn_layer
from ...tensor import Parameter, Tensor
from .. import functional as F
from .. import init
from ..module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU"]


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (``mode``: 'RNN_TANH', 'RNN_RELU', 'LSTM',
    'GRU').

    Parameters per layer k and direction (suffix ``_reverse`` for the backward one), G gates:
    ``weight_ih_l{k}`` (G*H, I_k) with I_0 = input_size and I_k = H * num_directions after,
    ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G*H,). All are
    initialised as in PyTorch: U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 dtype=None):
        super().__init__()
        name = self._layer_name(mode)
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive integer, got "
                             f"{hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive integer, got "
                             f"{num_layers!r}")
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout option adds dropout after all but the last "
                          f"recurrent layer, so non-zero dropout expects num_layers greater "
                          f"than 1, but got dropout={dropout} and num_layers={num_layers}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = 0
        dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
        G = GATES[mode] * hidden_size
        D = 2 if bidirectional else 1
        self._names = []
        for layer in range(num_layers):
            isz = input_size if layer == 0 else hidden_size * D
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], Parameter(B.xp.empty((G, isz), dtype=dtype)))
                setattr(self, names[1], Parameter(B.xp.empty((G, hidden_size), dtype=dtype)))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], Parameter(B.xp.empty(G, dtype=dtype)))
                    setattr(self, names[3], Parameter(B.xp.empty(G, dtype=dtype)))
                self._names.append(names)
        self.reset_parameters()

    @staticmethod
    def _layer_name(mode):
        return "RNN" if mode.startswith("RNN") else mode

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, k):
        names = self._names[k]
        w = [getattr(self, n) for n in names]
        return w if len(w) == 4 else w + [None, None]

    # ---------------------------------------------------------------- checks
    def _check_input(self, x):
        name = self._layer_name(self.mode)
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(x).__name__}")
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: expected a 2-D (unbatched: L, input_size) or 3-D input "
                             f"({'N, L' if self.batch_first else 'L, N'}, input_size), got "
                             f"shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input of shape {tuple(x.shape)} has {x.shape[-1]} "
                             f"features, expected input_size={self.input_size}")
        w = self.weight_ih_l0
        if x.dtype != w.dtype:
            raise ValueError(f"{name}: input dtype {x.dtype} does not match the parameters' "
                             f"dtype {w.dtype}")

    def _check_state(self, h, what, batch, unbatched):
        name = self._layer_name(self.mode)
        LD = self.num_layers * (2 if self.bidirectional else 1)
        want = (LD, self.hidden_size) if unbatched else (LD, batch, self.hidden_size)
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor, got {type(h).__name__}")
        if tuple(h.shape) != want:
            raise ValueError(f"{name}: expected {what} of shape {want} (num_layers * "
                             f"num_directions, {'' if unbatched else 'batch, '}hidden_size), "
                             f"got {tuple(h.shape)}")
        if unbatched:
            h = ops.unsqueeze(h, 1)
        return h

    def _check_lengths(self, lengths, T, batch, shape):
        name = self._layer_name(self.mode)
        where = f"input of shape {shape}"
        if isinstance(lengths, Tensor):
            lengths = lengths.data
        lens = B.xp.asarray(lengths)
        if lens.ndim == 0:
            lens = lens.reshape(1)
        if lens.dtype.kind not in "iu":
            if lens.dtype.kind == "f" and (lens == B.xp.round(lens)).all():
                lens = lens.astype(B.int64)
            else:
                raise ValueError(f"{name}: lengths must be integers, got dtype {lens.dtype}")
        if lens.shape != (batch,):
            raise ValueError(f"{name}: lengths of shape {tuple(lens.shape)} do not match the "
                             f"batch size {batch} (expected shape ({batch},); {where})")
        if batch and (lens.max() > T or lens.min() < 0):
            raise ValueError(f"{name}: lengths must lie in [0, {T}] (the sequence length of "
                             f"the input), got min {int(lens.min())} and max "
                             f"{int(lens.max())} ({where}, lengths of shape "
                             f"{tuple(lens.shape)})")
        return lens.astype(B.int64, copy=False)

    # ---------------------------------------------------------------- forward
    def forward(self, input, hx=None, lengths=None):
        """input: (L, N, input_size), (N, L, input_size) with batch_first, or unbatched
        (L, input_size). hx: h0 (or (h0, c0) for LSTM) of shape (D * num_layers, N, H)
        ((D * num_layers, H) unbatched); zeros when None. lengths: optional per-sequence
        valid lengths (N,) for right-padded batches: padded steps leave the states alone
        and give zero outputs (as pad_packed_sequence does).

        Returns (output, h_n) or, for LSTM, (output, (h_n, c_n)); output: (L, N, D * H)
        (batch_first: (N, L, D * H)), h_n and c_n: (D * num_layers, N, H).
        """
        self._check_input(input)
        name = self._layer_name(self.mode)
        lstm = self.mode == "LSTM"
        unbatched = input.ndim == 2
        x = input
        if unbatched:
            x = ops.unsqueeze(x, 1)
        elif self.batch_first:
            x = ops.transpose(x, 0, 1)
        T, batch = x.shape[0], x.shape[1]
        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise ValueError(f"{name}: hx must be a tuple (h0, c0), got "
                                     f"{type(hx).__name__}")
                h0 = self._check_state(hx[0], "h0", batch, unbatched)
                c0 = self._check_state(hx[1], "c0", batch, unbatched)
            else:
                h0 = self._check_state(hx, "h0", batch, unbatched)
        lens = None if lengths is None else self._check_lengths(lengths, T, batch,
                                                               tuple(input.shape))
        D = 2 if self.bidirectional else 1
        dropout = self.dropout if self.training else 0.0
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                w_ih, w_hh, b_ih, b_hh = self._weights(k)
                out, hn, cn = rnn_layer(self.mode, x, w_ih, w_hh, b_ih, b_hh,
                                        None if h0 is None else h0[k],
                                        None if c0 is None else c0[k], lens, reverse=d == 1)
                outs.append(out)
                hs.append(hn)
                cs.append(cn)
            x = outs[0] if D == 1 else ops.cat(outs, -1)
            if dropout > 0 and layer < self.num_layers - 1:
                x = F.dropout(x, dropout, True)
        h_n = ops.stack(hs, 0) if len(hs) > 1 else ops.unsqueeze(hs[0], 0)
        c_n = None
        if lstm:
            c_n = ops.stack(cs, 0) if len(cs) > 1 else ops.unsqueeze(cs[0], 0)
        if unbatched:
            x = ops.squeeze(x, 1)
            h_n = ops.squeeze(h_n, 1)
            c_n = None if c_n is None else ops.squeeze(c_n, 1)
        elif self.batch_first:
            x = ops.transpose(x, 0, 1)
        return (x, (h_n, c_n)) if lstm else (x, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    (L, N, input_size) -> output (L, N, D*H), h_n (D*num_layers, N, H). See
    :meth:`RNNBase.forward` for hx, lengths, batch_first and unbatched inputs.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r} (use 'tanh' or "
                             f"'relu')")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, PyTorch's equations and gate order (i, f, g, o):

        i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*), g = tanh(...)
        c' = f * c + i * g,  h' = o * tanh(c')

    (L, N, input_size), (h0, c0) -> output (L, N, D*H), (h_n, c_n) each (D*num_layers, N, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype)


class GRU(RNNBase):
    """Gated recurrent unit, PyTorch's equations and gate order (r, z, n):

        r, z = sigmoid(W_i* x + b_i* + W_h* h + b_h*)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

    (L, N, input_size), h0 -> output (L, N, D*H), h_n (D*num_layers, N, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype=dtype)
