"""Layer modules, one family a file."""
from .linear import Linear, Identity, Flatten, Unflatten
from .activation import ReLU, Tanh, Sigmoid, Softmax, LogSoftmax
from .loss import CrossEntropyLoss, BCEWithLogitsLoss, MSELoss
