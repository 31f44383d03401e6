"""``lamina.nn.functional`` (imported as ``F``): layers and losses as functions, with
``torch.nn.functional``'s names and arguments. One family a file; fused primitives live in
:mod:`lamina.ops`, everything else is a composition of ops with no backward code."""
from .activation import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .ctc import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from ...ops import pad  # noqa: F401,E402  (torch.nn.functional.pad)
