"""Meta-training CLI (absl flags).

``--problem=quadratic`` (and the other problems of ``problems.get_config``): meta-trains a
MetaOptimizer on one problem at a time with truncated BPTT, as the 2016 paper (``l2l/training.py``),
and saves the optimizer that did best on freshly drawn validation problems to ``--save_path``
(``config.json`` + ``nets.*`` checkpoint, TensorBoard logs in ``logs/``).

With any of ``--estimator``, ``--num_tasks``, ``--num_particles``, ``--sigma``, ``--truncation``,
``--horizon``, ``--augment`` or a comma-separated ``--problem`` (a mixture), it meta-trains over task
families instead (``l2l/family_training.py``): K tasks at once, each with its own horizon and
resets, estimates by TBPTT, ES or PES, for ``--num_outer_steps`` outer steps.

``--problem=sinusoid`` without those flags: meta-learns an initialisation of the sine-wave MLP with
Reptile, first-order MAML or MAML (``l2l/sinusoid_training.py``) and saves it to ``--save_path``.
"""

import cli

cli.quiet_tensorflow()  # Before anything imports TensorFlow.

# pylint: disable=wrong-import-position
from absl import app, flags

import problems
from l2l import distribute
from l2l import estimators
from l2l import evaluation
from l2l import family_training
from problems import sinusoid_training
from l2l import meta
from l2l import tasks
from l2l import training

FLAGS = flags.FLAGS
EPOCHS_PER_PROGRESS_LINE = 100  # --logging_period's default for the optimizer problems.
flags.DEFINE_string("problem", "quadratic", "Problem to meta-train on: one of "
                    f"{', '.join(problems.FAMILY_NAMES)}; a comma-separated list of them, or "
                    f"{', '.join(problems.MIXTURES)}, for a mixture of task families.")
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
flags.DEFINE_integer("logging_period", None, "Epochs between progress lines (default "
                     f"{EPOCHS_PER_PROGRESS_LINE}; sinusoid: iterations per compiled call and "
                     f"progress line, default {sinusoid_training.LOGGING_PERIOD}).", lower_bound=1)
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
flags.DEFINE_enum("algorithm", "reptile", list(sinusoid_training.ALGORITHMS),
                  "Meta-learning algorithm for --problem=sinusoid.")
flags.DEFINE_integer("num_iterations", 30000, "Outer iterations (sinusoid).", lower_bound=1)
flags.DEFINE_integer("meta_batch_size", 1, "Tasks per outer iteration (sinusoid).",
                     lower_bound=1)
flags.DEFINE_integer("inner_steps", 5, "Inner SGD steps per task (sinusoid).", lower_bound=1)
flags.DEFINE_float("inner_learning_rate", 0.02, "Inner SGD step size (sinusoid).",
                   lower_bound=0.0)
flags.DEFINE_float("outer_learning_rate", 0.1,
                   "Initial outer step size, annealed to 0 (sinusoid).", lower_bound=0.0)

flags.DEFINE_enum("reptile_variant", "seed", list(sinusoid_training.VARIANTS),
                  "Reptile as the demo does it (minibatch SGD, then interpolate) or the library's "
                  "reptile_step (sinusoid, --algorithm=reptile).")
flags.DEFINE_integer("checkpoint_every", 0, "Epochs (sinusoid: iterations) between resumable "
                     "checkpoints under --save_path (0: none).", lower_bound=0)
flags.DEFINE_boolean("resume", False, "Continue from the latest checkpoint under --save_path.")

_SINUSOID_FLAGS = ("algorithm", "reptile_variant", "num_iterations", "meta_batch_size",
                   "inner_steps", "inner_learning_rate", "outer_learning_rate", "seed")


# Meta-training over task families (l2l/family_training.py).
flags.DEFINE_enum("estimator", None, list(estimators.ESTIMATORS),
                  "Meta-gradient estimator (default tbptt): truncated BPTT, antithetic ES over "
                  "each truncation, or persistent ES.")
flags.DEFINE_integer("num_tasks", 8, "Tasks per estimate (K).", lower_bound=1)
flags.DEFINE_integer("num_particles", 1, "Antithetic pairs per task (es, pes).", lower_bound=1)
flags.DEFINE_float("sigma", 0.01, "Standard deviation of the ES / PES perturbations.",
                   lower_bound=1e-12)
flags.DEFINE_integer("truncation", None, "Inner steps per estimate (default --unroll_length).",
                     lower_bound=1)
flags.DEFINE_string("horizon", None, "Steps per task before it is replaced: a number, or "
                    "loguniform:LOW:HIGH (default --num_steps).")
flags.DEFINE_enum("augment", "none", list(tasks.AUGMENTATIONS),
                  "Task augmentation: reparam rescales every parameter tensor by a log-uniform "
                  "factor in [1e-3, 1e3].")
flags.DEFINE_string("validation_problem", None, "Task families (names or mixtures, comma-"
                    "separated) whose test data choose the best optimizer; default: --problem's. "
                    "E.g. general-validation: families outside both the training mixture and the "
                    "held-out suite.")
flags.DEFINE_string("init_from", None, "Start the nets from a saved optimizer (a --save_path "
                    "directory, or a shipped name such as celo) instead of --preset (task families).")
flags.DEFINE_integer("num_outer_steps", 1000, "Outer steps (task families).", lower_bound=1)
flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay on the nets (AdamW; task "
                   "families).", lower_bound=0.0)
flags.DEFINE_enum("strategy", "none", list(distribute.STRATEGIES),
                  "tf.distribute strategy (task families): mirrored runs --num_tasks tasks on each "
                  "of --num_replicas devices (GPUs, or logical CPUs) and averages the estimates; "
                  "multi_worker does the same on the workers of TF_CONFIG; parameter_server: "
                  "the workers of TF_CONFIG run ES estimates asynchronously for the chief.")
flags.DEFINE_integer("num_replicas", 2, "Replicas of --strategy=mirrored.", lower_bound=1)
flags.DEFINE_integer("max_staleness", 4, "--strategy=parameter_server: apply an estimate only if "
                     "at most this many updates were applied since it read the weights.",
                     lower_bound=0)
flags.DEFINE_enum("nonfinite", "cap", ["cap", "skip"], "Non-finite meta-losses (task families): "
                  "cap each problem's at 20, or skip the update.")

_FAMILY_FLAGS = ("estimator", "num_tasks", "num_particles", "sigma", "truncation", "horizon",
                 "validation_problem", "augment", "strategy", "init_from", "max_staleness")


def _uses_families() -> bool:
  return ("," in FLAGS.problem or FLAGS.problem in problems.MIXTURES
          or any(FLAGS[name].present for name in _FAMILY_FLAGS))


def _problem_names(flag: str = "problem") -> list[str]:
  """The registry names in --problem (or another flag of that form), mixtures expanded."""
  names = []
  for name in (name.strip() for name in FLAGS[flag].value.split(",")):
    if name in problems.MIXTURES:
      names += problems.MIXTURES[name]
    elif name in problems.FAMILY_NAMES:
      names.append(name)
    else:
      raise app.UsageError(f"--{flag}: unknown problem {name!r}; choose from "
                           f"{', '.join(problems.FAMILY_NAMES + tuple(problems.MIXTURES))}.")
  return names


def train_sinusoid() -> None:
  if FLAGS["reptile_variant"].present and FLAGS.algorithm != "reptile":
    raise app.UsageError(f"--reptile_variant applies to --algorithm=reptile only, not "
                         f"{FLAGS.algorithm}.")
  variant = FLAGS.reptile_variant if FLAGS.algorithm == "reptile" else "library"
  result = sinusoid_training.train_sinusoid(
      FLAGS.algorithm, FLAGS.num_iterations, FLAGS.meta_batch_size, FLAGS.inner_steps,
      FLAGS.inner_learning_rate, FLAGS.outer_learning_rate, FLAGS.seed,
      FLAGS.logging_period or sinusoid_training.LOGGING_PERIOD, variant, FLAGS.save_path,
      FLAGS.checkpoint_every or None, FLAGS.resume)
  print(f"trained {FLAGS.algorithm} ({variant}) on sinusoid: {FLAGS.num_iterations} iterations "
        f"(from {result.start_iteration}), {result.iterations_per_second:.0f} iterations/s, "
        f"compiled in {result.compile_seconds:.1f} s")
  if FLAGS.save_path:
    sinusoid_training.save(result.params, FLAGS.save_path, {
        "problem": "sinusoid", "algorithm": FLAGS.algorithm,
        "flags": {name: FLAGS[name].value for name in _SINUSOID_FLAGS},
        "iterations_per_second": result.iterations_per_second,
        "compile_seconds": result.compile_seconds})
    print(f"saved to {FLAGS.save_path}")


def train_optimizer() -> None:
  try:
    evaluation.check_unrolls(FLAGS.num_steps, FLAGS.unroll_length)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  result = training.meta_train(
      problems.get_config(FLAGS.problem, "train", FLAGS.data_dir), FLAGS.num_epochs,
      FLAGS.num_steps, FLAGS.unroll_length, FLAGS.learning_rate, FLAGS.second_derivatives,
      FLAGS.evaluation_period, FLAGS.evaluation_epochs,
      FLAGS.logging_period or EPOCHS_PER_PROGRESS_LINE, FLAGS.save_path, FLAGS.seed, FLAGS.preset,
      FLAGS.jit_compile, FLAGS.clip_norm,
      FLAGS.checkpoint_every or None, FLAGS.resume, FLAGS.max_nonfinite, FLAGS.progress_seconds)
  print(f"meta-trained on {FLAGS.problem}: {FLAGS.num_epochs} epochs (from {result.start_epoch}), "
        f"{result.seconds_per_epoch:.3f} s/epoch, best validation log10 mean final loss "
        f"{result.best_log10_loss:.3f}, {result.skipped_updates} non-finite updates skipped")
  if FLAGS.save_path and result.saved == "best":
    print(f"best optimizer (epoch {result.saved_epoch}, validation log10 mean final loss "
          f"{result.best_log10_loss:.3f}) saved to {FLAGS.save_path}")
  elif FLAGS.save_path:
    print(f"no validation gave a finite score: final optimizer (epoch {result.saved_epoch}) "
          f"saved to {FLAGS.save_path}")


@flags.multi_flags_validator(["init_from", "preset"],
                             message="--init_from and --preset both choose the nets: give one.")
def _check_init(values):
  return not (values["init_from"] and values["preset"])


@flags.multi_flags_validator(["checkpoint_every", "resume", "save_path"],
                             message="--checkpoint_every and --resume need --save_path.")
def _check_checkpointing(values):
  return not (values["checkpoint_every"] or values["resume"]) or bool(values["save_path"])


def train_on_families() -> None:
  # Devices and collectives are set up before anything creates a tensor.
  if FLAGS.strategy == "mirrored":
    distribute.use_logical_cpus(FLAGS.num_replicas)
  if FLAGS.strategy == "parameter_server" and (FLAGS.estimator or "tbptt") != "es":
    raise app.UsageError("--strategy=parameter_server runs stateless ES estimates on its "
                         "asynchronous workers: add --estimator=es.")
  try:
    if FLAGS.strategy == "parameter_server" and distribute.serve_if_server():
      return
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_replicas)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  names = _problem_names()
  try:
    horizon = tasks.parse_horizon(FLAGS.horizon or FLAGS.num_steps)
  except ValueError as e:
    raise app.UsageError(f"--horizon: {e}") from e
  config = estimators.EstimatorConfig(
      FLAGS.estimator or "tbptt", FLAGS.num_tasks, FLAGS.num_particles, FLAGS.sigma,
      FLAGS.truncation or FLAGS.unroll_length, horizon)
  families, assignments = [], None
  with distribute.worker_local(strategy):
    for name in names:
      family, assignments = problems.get_family(name, "train", FLAGS.data_dir)
      families.append(tasks.augment(family, FLAGS.augment))
  validation = [problems.get_family(name, "test", FLAGS.data_dir)[0]
                for name in _problem_names("validation_problem" if FLAGS.validation_problem
                                           else "problem")]
  net_keys = (problems.get_config(names[0], "train", FLAGS.data_dir).net_keys
              if names[0] in problems.NAMES else None)
  if FLAGS.init_from:
    optimizer = meta.MetaOptimizer.load(FLAGS.init_from)
  else:
    optimizer = meta.MetaOptimizer.from_preset(FLAGS.preset or "original", net_keys)
  result = family_training.meta_train_families(
      optimizer, families, validation, config, FLAGS.num_outer_steps, FLAGS.learning_rate,
      FLAGS.weight_decay, FLAGS.clip_norm, FLAGS.nonfinite, assignments, FLAGS.evaluation_period,
      FLAGS.evaluation_epochs, FLAGS.num_steps, FLAGS.save_path, FLAGS.checkpoint_every or None,
      FLAGS.resume, FLAGS.seed, FLAGS.jit_compile, FLAGS.progress_seconds, strategy,
      FLAGS.max_staleness)
  print(f"meta-trained on {FLAGS.problem} with {config.estimator}: {FLAGS.num_outer_steps} outer "
        f"steps (from {result.start_step}), {result.inner_steps_per_second:.0f} inner steps x "
        f"tasks per second, best validation log10 mean final loss {result.best_log10_loss:.3f} "
        f"(outer step {result.best_step}), {result.nonfinite} non-finite")
  if FLAGS.save_path and result.best_step and distribute.writes_files(strategy):
    print(f"best optimizer (outer step {result.best_step}, validation log10 mean final loss "
          f"{result.best_log10_loss:.3f}) saved to {FLAGS.save_path}")
  if distribute.is_parameter_server(strategy):
    distribute.exit_chief()


def main(argv):
  del argv
  if _uses_families():
    train_on_families()
  elif FLAGS.problem == "sinusoid":
    train_sinusoid()
  else:
    _problem_names()
    train_optimizer()


if __name__ == "__main__":
  cli.run(main, default_threads=lambda: problems.intra_op_threads(FLAGS.problem))
