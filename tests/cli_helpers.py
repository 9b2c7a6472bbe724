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
