"""Training: the Trainer, its callbacks and metrics."""
from . import metrics
from .callbacks import (Callback, CSVLogger, EarlyStopping, LearningCurves, LRSchedulerStep,
                        ModelCheckpoint, ProgressBar, TensorBoard, plot_history)
from .metrics import accuracy, bits_per_char, confusion_matrix, perplexity, top_k_accuracy
from .trainer import Trainer

__all__ = ["Trainer", "Callback", "EarlyStopping", "ModelCheckpoint", "LRSchedulerStep",
           "ProgressBar", "CSVLogger", "TensorBoard", "LearningCurves", "plot_history",
           "metrics", "accuracy", "top_k_accuracy", "confusion_matrix", "perplexity",
           "bits_per_char"]
