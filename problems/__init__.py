"""Optimizee problems and the registry of named meta-training configurations."""

import dataclasses
from typing import Any, Callable

import tensorflow as tf

from problems import quadratic as _quadratic


@dataclasses.dataclass(frozen=True)
class ProblemConfig:
  """A named setting: how to build the problem, which nets optimize it, and how."""
  make_loss: Callable[[], tf.Tensor]
  preset: str  # A key of l2l.meta.PRESETS.
  net_assignments: Any = None


def _quadratic_config(mode: str) -> ProblemConfig:
  del mode  # Train and test problems come from the same distribution.
  return ProblemConfig(_quadratic.quadratic(batch_size=128, num_dims=10), "original")


_CONFIGS: dict[str, Callable[[str], ProblemConfig]] = {"quadratic": _quadratic_config}
NAMES = tuple(_CONFIGS)


def get_config(name: str, mode: str = "train") -> ProblemConfig:
  """The named configuration; ``mode`` is "train" (meta-training) or "test" (held-out evaluation)."""
  if name not in _CONFIGS:
    raise ValueError(f"Unknown problem {name!r}; choose one of {sorted(_CONFIGS)}.")
  if mode not in ("train", "test"):
    raise ValueError(f"mode must be 'train' or 'test', got {mode!r}.")
  return _CONFIGS[name](mode)
