"""Layer modules, one family a file (each file lists its public names in ``__all__``)."""
from .linear import Linear, Identity, Flatten, Unflatten
from .activation import ReLU, Tanh, Sigmoid, Softmax, LogSoftmax
from .loss import CrossEntropyLoss, BCEWithLogitsLoss, MSELoss
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
