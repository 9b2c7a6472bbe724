"""Saving and loading, in one place: optimizers and models as config + weights, resumable training.

A saved optimizer or model is a directory with ``config.json`` and a ``tf.train.Checkpoint`` under a
fixed prefix. Both are written to temporary names first and moved into place (weights before the
config), so a crash while saving leaves the previous save readable. Reading checks everything
before anything is used, and every problem is a ``LoadError`` (or ``FileNotFoundError``) that
names the path and what does not match: nothing loads partially or silently.

Resumable training state goes through ``resumable``: a ``tf.train.CheckpointManager`` (TF writes
the files, then atomically replaces its ``checkpoint`` index) restored strictly on resume.
"""

import glob
import json
import os
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

CONFIG_FILE = "config.json"


class LoadError(ValueError):
  """A saved optimizer, checkpoint or data file that cannot be used as it is (a user can fix)."""


def write_json(path: str, value: Any) -> None:
  """Writes ``value`` as JSON to ``path`` atomically (a temporary file, then a rename)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as f:
    json.dump(value, f, indent=2)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(f.name, 0o666 & ~umask)  # A temporary file is private; the saved one is not.
  os.replace(f.name, path)


def save(directory: str, prefix: str, objects: dict[str, Any], config: dict) -> None:
  """Writes ``objects`` as a ``tf.train.Checkpoint`` at ``directory/prefix`` and ``config`` as
  ``directory/config.json``; the weights are moved into place before the config."""
  os.makedirs(directory, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=directory, prefix=".saving-") as scratch:
    tf.train.Checkpoint(**objects).write(os.path.join(scratch, prefix))
    for written in sorted(glob.glob(os.path.join(scratch, prefix + ".*")),
                          key=lambda name: name.endswith(".index")):  # The index last.
      os.replace(written, os.path.join(directory, os.path.basename(written)))
  write_json(os.path.join(directory, CONFIG_FILE), config)


def read_config(directory: str, what: str) -> dict:
  """``directory/config.json`` as a dict; ``what`` names the saved thing in the errors."""
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No saved {what} at {directory!r}: expected {path}.")
  try:
    with open(path) as f:
      config = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise LoadError(f"{path} is not valid JSON ({e}); it should be the {CONFIG_FILE} that was "
                    f"saved with the {what}.") from e
  if not isinstance(config, dict):
    raise LoadError(f"{path} holds a {type(config).__name__}, not the JSON object saved with the "
                    f"{what}.")
  return config


def read_weights(directory: str, prefix: str, what: str) -> dict[str, np.ndarray]:
  """Every tensor of the checkpoint ``directory/prefix`` by name, each read and checked finite."""
  path = os.path.join(directory, prefix)
  if not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"No saved {what} at {directory!r}: expected {path}.index next to "
                            f"{CONFIG_FILE}.")
  try:
    reader = tf.train.load_checkpoint(path)
    tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
               if name.endswith("VARIABLE_VALUE")}
  except Exception as e:  # pylint: disable=broad-except  # TF raises several kinds here.
    raise LoadError(f"The saved {what} at {directory!r} is corrupt or truncated "
                    f"({type(e).__name__}: {str(e).splitlines()[0]}); save it again or copy "
                    f"{path}.* again.") from e
  broken = sorted(name for name, value in tensors.items()
                  if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all())
  if broken:
    raise LoadError(f"The saved {what} at {directory!r} holds NaN or Inf in {broken}; it was "
                    "saved from a diverged run: use an earlier save.")
  return tensors


def resumable(directory: str, state: dict[str, Any], resume: bool, what: str
              ) -> tf.train.CheckpointManager:
  """A manager keeping the last two checkpoints of ``state`` under ``directory``.

  With ``resume`` the latest checkpoint is restored and must match ``state`` exactly;
  ``what`` describes the run's configuration in the error when it does not.
  """
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(**state), directory, max_to_keep=2)
  if resume:
    if manager.latest_checkpoint is None:
      raise FileNotFoundError(f"resume: no checkpoint under {directory}; train with "
                              "--checkpoint_every (and the same --save_path) first.")
    try:
      manager.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    except (AssertionError, ValueError) as e:
      raise LoadError(f"The checkpoint {manager.latest_checkpoint} does not match this "
                      f"configuration ({what}): {str(e).splitlines()[0]}") from e
  return manager
