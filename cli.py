"""What train.py and evaluate.py share as programs: a quiet start and one-line errors.

``quiet_tensorflow()`` must run before anything imports TensorFlow: it hides TensorFlow's start-up
and C++ log lines (device probing, oneDNN notices, checkpoint sharding timings) unless the command
line has ``--tf_logs``. ``run(main)`` is ``absl.app.run`` that reports a user's mistake (a bad flag
combination, a missing file, a saved optimizer that does not load, diverged training) as one line
``error: ...`` with exit status 1; ``--verbosity=1`` (or higher) shows the traceback instead.
``set_intra_op_threads`` applies the ``--intra_op_threads`` choice before TensorFlow starts.
"""

import contextlib
import logging
import os
import sys
from typing import Callable

TF_LOGS_FLAG = "--tf_logs"


def quiet_tensorflow() -> None:
  """Hides TensorFlow's own log output for this process unless ``--tf_logs`` is on the command line.

  TensorFlow prints some C++ lines while it is imported, before its log level applies; those are
  dropped by pointing the process's stderr at /dev/null during the import.
  """
  if TF_LOGS_FLAG in sys.argv:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  with _stderr_to_devnull():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel("ERROR")
  tensorflow_dir = os.path.dirname(tf.__file__)
  # Parts of TensorFlow log through absl directly (e.g. checkpoint sharding timings).
  logging.getLogger("absl").addFilter(
      lambda record: not record.pathname.startswith(tensorflow_dir) or
      record.levelno >= logging.ERROR)


def set_intra_op_threads(threads: int | None) -> None:
  """Runs TensorFlow's kernels (XLA's included) on ``threads`` threads; None keeps its default.

  Must come before the first TensorFlow operation; one thread is faster for problems whose kernels
  are too small to share out (see ``problems.intra_op_threads``).
  """
  if threads is None:
    return
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_intra_op_parallelism_threads(threads)


@contextlib.contextmanager
def _stderr_to_devnull():
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def run(main: Callable[[list[str]], None],
        default_threads: Callable[[], int | None] = lambda: None) -> None:
  """``absl.app.run(main)`` with user mistakes reported as one ``error:`` line (exit status 1).

  ``default_threads()`` (called once the flags are parsed) gives the intra-op thread count when
  ``--intra_op_threads`` is not set.
  """
  from absl import app, flags  # pylint: disable=import-outside-toplevel
  from l2l import checkpoint  # pylint: disable=import-outside-toplevel

  flags.DEFINE_boolean(TF_LOGS_FLAG[2:], False, "Show TensorFlow's own log lines (start-up, "
                       "devices, XLA, checkpoint timings), hidden by default.")
  flags.DEFINE_integer("intra_op_threads", None, "Threads for TensorFlow's kernels (default: the "
                       "problem's measured choice, else one per core).", lower_bound=1)
  user_errors = (app.UsageError, FileNotFoundError, checkpoint.LoadError, FloatingPointError)

  def main_with_errors(argv: list[str]) -> None:
    try:
      set_intra_op_threads(flags.FLAGS.intra_op_threads or default_threads())
      main(argv)
    except user_errors as e:
      if flags.FLAGS.verbosity >= 1:
        raise
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)

  app.run(main_with_errors)
