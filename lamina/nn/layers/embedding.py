"""Embedding: a lookup table of learned vectors indexed by integers."""
from ... import backend as B
from ...tensor import Parameter, Tensor
from .. import functional as F
from .. import init
from ..module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of ``weight`` (num_embeddings, embedding_dim) looked up by integer indices:
    input of any shape (int64/int32) -> input.shape + (embedding_dim,).

    Initialised as in PyTorch: weight ~ N(0, 1), the ``padding_idx`` row zeroed (it gets
    no gradient either). ``_weight`` supplies the initial table instead; ``max_norm``
    renormalises looked-up rows in place; ``scale_grad_by_freq`` divides a row's gradient
    by its count in the batch. Sparse gradients are not supported.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"num_embeddings ({num_embeddings})")
            padding_idx %= num_embeddings
        if sparse:
            raise NotImplementedError("Embedding: sparse gradients are not supported; use "
                                      "sparse=False")
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            dtype = B.get_default_dtype() if dtype is None else B.to_dtype(dtype)
            self.weight = Parameter(B.xp.empty((num_embeddings, embedding_dim), dtype=dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            data = _weight.data if isinstance(_weight, Tensor) else B.xp.asarray(_weight)
            if tuple(data.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {tuple(data.shape)} does not "
                                 f"match (num_embeddings, embedding_dim) = ({num_embeddings}, "
                                 f"{embedding_dim})")
            if dtype is not None:
                data = data.astype(B.to_dtype(dtype), copy=False)
            self.weight = Parameter(data, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        try:
            return F.embedding(input, self.weight, self.padding_idx, self.max_norm,
                               self.norm_type, self.scale_grad_by_freq)
        except (TypeError, IndexError) as exc:
            shape = tuple(B.xp.shape(getattr(input, "data", input)))
            raise type(exc)(f"Embedding({self.num_embeddings}, {self.embedding_dim}): "
                            f"{exc} (input shape {shape})") from None

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding holding ``embeddings`` (num_embeddings, embedding_dim); with
        ``freeze`` (default) the weight gets no gradient."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{tuple(embeddings.shape)}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s
