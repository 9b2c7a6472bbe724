"""Running train.py / evaluate.py as a user does, killing them, reading their checkpoints."""

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, check=True, quiet_env=True):
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  if quiet_env:
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
  if check and result.returncode != 0:
    raise AssertionError(result.stdout + result.stderr)
  return result


def kill_after_first_checkpoint(args: list[str], state) -> int:
  """Starts ``python *args``, SIGKILLs it once the checkpoint index ``state`` exists; its exit code."""
  process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  deadline = time.time() + 120
  while not state.exists() and process.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  return process.wait()


def checkpoint_tensors(directory) -> dict:
  """Every tensor of the latest checkpoint under ``directory`` but the save counter."""
  reader = tf.train.load_checkpoint(str(directory))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if "save_counter" not in name}


def kill_resume_and_compare(args: list[str], tmp_path, checkpoint_dir: str, period: int,
                            total: int) -> dict:
  """Runs ``python *args`` to its first checkpoint, SIGKILLs it, resumes it with ``--resume`` and
  runs it again uninterrupted; asserts that the resumed run lost at most one checkpoint period
  and ends with exactly the uninterrupted run's checkpoint. Returns that checkpoint's tensors."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  killed, reference = tmp_path / "killed", tmp_path / "reference"
  index = killed / checkpoint_dir / "checkpoint"
  returncode = kill_after_first_checkpoint([*args, f"--save_path={killed}"], index)
  assert index.exists() and returncode == -signal.SIGKILL
  out = run(*args, f"--save_path={killed}", "--resume").stdout
  resumed_from = int(out.split("(from ")[1].split(")")[0])
  assert period <= resumed_from < total and resumed_from % period == 0
  run(*args, f"--save_path={reference}")
  resumed = checkpoint_tensors(killed / checkpoint_dir)
  expected = checkpoint_tensors(reference / checkpoint_dir)
  assert resumed.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_array_equal(resumed[name], value, err_msg=name)
  assert (killed / "config.json").read_text() == (reference / "config.json").read_text()
  return expected
