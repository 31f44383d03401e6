"""Optimizers over flat parameter buffers, and learning-rate schedules."""
from .optimizer import Optimizer, set_num_threads, get_num_threads
from .sgd import SGD
from .adam import Adam, AdamW
from .adaptive import Adagrad, RMSprop, Adadelta
from .es import EvolutionStrategies
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta",
           "EvolutionStrategies", "lr_scheduler", "set_num_threads", "get_num_threads"]
