"""Meta-training CLI (absl flags).

``--problem=quadratic`` (and the other problems of ``problems.get_config``): meta-trains a
MetaOptimizer (``l2l/training.py``) and saves the optimizer that did best on freshly drawn validation
problems to ``--save_path`` (``config.json`` + ``nets.*`` checkpoint, TensorBoard logs in ``logs/``).

``--problem=sinusoid``: meta-learns an initialisation of the sine-wave MLP with Reptile, first-order
MAML or MAML (``l2l/initialisation.py``) and saves it to ``--save_path``.
"""

import cli

cli.quiet_tensorflow()  # Before anything imports TensorFlow.

# pylint: disable=wrong-import-position
from absl import app, flags

import problems
from l2l import initialisation
from l2l import meta
from l2l import training

FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "quadratic", list(problems.NAMES) + ["sinusoid"],
                  "Problem to meta-train on.")
flags.DEFINE_string("save_path", None, "Directory to save the trained optimizer / model to.")
flags.DEFINE_string("data_dir", None, "MNIST / CIFAR-10 files (default MNIST: TensorFlow Datasets "
                    "if populated, else the embedded subset; CIFAR-10 needs it).")
flags.DEFINE_integer("seed", 0, "Random seed.")
# Learned optimizer (MetaOptimizer).
flags.DEFINE_integer("num_epochs", 1000, "Meta-training epochs (fresh problems).", lower_bound=1)
flags.DEFINE_integer("num_steps", 100, "Optimizee steps per epoch.", lower_bound=1)
flags.DEFINE_integer("unroll_length", 20, "Optimizee steps per truncated unroll.", lower_bound=1)
flags.DEFINE_float("learning_rate", 0.001, "Adam learning rate on the optimizer nets.",
                   lower_bound=0.0)
flags.DEFINE_boolean("second_derivatives", False, "Differentiate through optimizee gradients.")
flags.DEFINE_enum("preset", None, sorted(meta.PRESETS),
                  "Net configuration; default: the problem's own.")
flags.DEFINE_boolean("jit_compile", True, "Compile each unroll with XLA (faster on CPU).")
flags.DEFINE_integer("logging_period", 100, "Epochs between progress lines (sinusoid: iterations "
                     "per compiled call and progress line).", lower_bound=1)
flags.DEFINE_float("progress_seconds", 10.0, "At least one progress line per this many seconds.",
                   lower_bound=0.0)
flags.DEFINE_integer("evaluation_period", 100, "Epochs between validations (and one after the "
                     "last epoch).", lower_bound=1)
flags.DEFINE_integer("evaluation_epochs", 20, "Validation problems per validation.",
                     lower_bound=1)
flags.DEFINE_float("clip_norm", None, "Clip the meta-gradient to this global norm (default: no "
                   "clipping).", lower_bound=1e-12)
flags.DEFINE_integer("max_nonfinite", 10, "Stop after this many non-finite meta-steps in a row "
                     "(each is skipped).", lower_bound=1)
# Initialisation meta-learning (sinusoid).
flags.DEFINE_enum("algorithm", "reptile", list(initialisation.ALGORITHMS),
                  "Meta-learning algorithm for --problem=sinusoid.")
flags.DEFINE_integer("num_iterations", 30000, "Outer iterations (sinusoid).", lower_bound=1)
flags.DEFINE_integer("meta_batch_size", 1, "Tasks per outer iteration (sinusoid).",
                     lower_bound=1)
flags.DEFINE_integer("inner_steps", 5, "Inner SGD steps per task (sinusoid).", lower_bound=1)
flags.DEFINE_float("inner_learning_rate", 0.02, "Inner SGD step size (sinusoid).",
                   lower_bound=0.0)
flags.DEFINE_float("outer_learning_rate", 0.1,
                   "Initial outer step size, annealed to 0 (sinusoid).", lower_bound=0.0)

flags.DEFINE_enum("reptile_variant", "seed", list(initialisation.VARIANTS),
                  "Reptile as the demo does it (minibatch SGD, then interpolate) or the library's "
                  "reptile_step (sinusoid, --algorithm=reptile).")
flags.DEFINE_integer("checkpoint_every", 0, "Epochs (sinusoid: iterations) between resumable "
                     "checkpoints under --save_path (0: none).", lower_bound=0)
flags.DEFINE_boolean("resume", False, "Continue from the latest checkpoint under --save_path.")

_SINUSOID_FLAGS = ("algorithm", "reptile_variant", "num_iterations", "meta_batch_size",
                   "inner_steps", "inner_learning_rate", "outer_learning_rate", "seed")


@flags.multi_flags_validator(["num_steps", "unroll_length"],
                             message="--num_steps must be a multiple of --unroll_length.")
def _check_unrolls(values):
  return values["num_steps"] % values["unroll_length"] == 0


def train_sinusoid() -> None:
  if FLAGS["reptile_variant"].present and FLAGS.algorithm != "reptile":
    raise app.UsageError(f"--reptile_variant applies to --algorithm=reptile only, not "
                         f"{FLAGS.algorithm}.")
  variant = FLAGS.reptile_variant if FLAGS.algorithm == "reptile" else "library"
  result = initialisation.train_sinusoid(
      FLAGS.algorithm, FLAGS.num_iterations, FLAGS.meta_batch_size, FLAGS.inner_steps,
      FLAGS.inner_learning_rate, FLAGS.outer_learning_rate, FLAGS.seed, FLAGS.logging_period,
      variant, FLAGS.save_path, FLAGS.checkpoint_every or None, FLAGS.resume)
  print(f"trained {FLAGS.algorithm} ({variant}) on sinusoid: {FLAGS.num_iterations} iterations "
        f"(from {result.start_iteration}), {result.iterations_per_second:.0f} iterations/s, "
        f"compiled in {result.compile_seconds:.1f} s")
  if FLAGS.save_path:
    initialisation.save(result.params, FLAGS.save_path, {
        "problem": "sinusoid", "algorithm": FLAGS.algorithm,
        "flags": {name: FLAGS[name].value for name in _SINUSOID_FLAGS},
        "iterations_per_second": result.iterations_per_second,
        "compile_seconds": result.compile_seconds})
    print(f"saved to {FLAGS.save_path}")


def train_optimizer() -> None:
  result = training.meta_train(
      FLAGS.problem, FLAGS.num_epochs, FLAGS.num_steps, FLAGS.unroll_length, FLAGS.learning_rate,
      FLAGS.second_derivatives, FLAGS.evaluation_period, FLAGS.evaluation_epochs,
      FLAGS.logging_period, FLAGS.save_path, FLAGS.seed, FLAGS.preset, FLAGS.jit_compile,
      FLAGS.data_dir, FLAGS.clip_norm, FLAGS.checkpoint_every or None, FLAGS.resume,
      FLAGS.max_nonfinite, FLAGS.progress_seconds)
  print(f"meta-trained on {FLAGS.problem}: {FLAGS.num_epochs} epochs (from {result.start_epoch}), "
        f"{result.seconds_per_epoch:.3f} s/epoch, best validation log10 mean final loss "
        f"{result.best_log10_loss:.3f}, {result.skipped_updates} non-finite updates skipped")
  if FLAGS.save_path and result.saved == "best":
    print(f"best optimizer (epoch {result.saved_epoch}, validation log10 mean final loss "
          f"{result.best_log10_loss:.3f}) saved to {FLAGS.save_path}")
  elif FLAGS.save_path:
    print(f"no validation gave a finite score: final optimizer (epoch {result.saved_epoch}) "
          f"saved to {FLAGS.save_path}")


@flags.multi_flags_validator(["checkpoint_every", "resume", "save_path"],
                             message="--checkpoint_every and --resume need --save_path.")
def _check_checkpointing(values):
  return not (values["checkpoint_every"] or values["resume"]) or bool(values["save_path"])


def main(argv):
  del argv
  if FLAGS.problem == "sinusoid":
    train_sinusoid()
  else:
    train_optimizer()


if __name__ == "__main__":
  cli.run(main)
