"""Layer modules, one family a file (each file lists its public names in ``__all__``)."""
from .linear import Linear, Bilinear, Identity, Flatten, Unflatten
from .embedding import Embedding
from .activation import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .ctc import *  # noqa: F401,F403
from .seq2seq import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .blocks import *  # noqa: F401,F403
from .rnn_cell import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
