"""l2l: learned optimizers and gradient-based meta-learning for TensorFlow 2 and Sonnet 2."""

from l2l import checkpoint, estimators, pretrained, variables
from l2l.checkpoint import LoadError
from l2l.learned_optimizer import KerasLearnedOptimizer, LearnedOptimizer
from l2l.meta import PRESETS, MetaLoss, MetaOptimizer, MetaStep
from l2l.meta_learning import fomaml_step, maml_step, reptile_step
from l2l.updates import (adam_step, adam_update, gradient_descent_update, lamb_update, lars_update,
                         optimizer_update, stop_gradient)

__all__ = [
    "KerasLearnedOptimizer", "LearnedOptimizer", "LoadError", "MetaLoss", "MetaOptimizer",
    "MetaStep", "PRESETS", "adam_step", "adam_update", "checkpoint", "estimators",
    "fomaml_step", "gradient_descent_update", "lamb_update", "lars_update", "maml_step",
    "optimizer_update", "pretrained", "reptile_step", "stop_gradient", "variables",
]
