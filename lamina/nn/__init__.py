"""Networks from modules: Module, Parameter, containers, layers, ``functional`` and ``init``."""
from ..tensor import Parameter
from .module import Module
from .containers import Sequential, ModuleList, ModuleDict
from .layers import *  # noqa: F401,F403
from . import functional, init, utils
from .decoding import greedy_decode, beam_search, sample  # noqa: E402
