"""Meta-training: guards (non-finite steps, clipping), resume checks, short runs that learn."""

import numpy as np
import pytest
import tensorflow as tf

import l2l
import problems
from l2l import evaluation
from l2l import training
from problems import quadratic

QUADRATIC = problems.get_config("quadratic")


def _nan_after(steps: int):
  """A problem whose loss turns NaN once x has taken ``steps`` optimizer steps (x counts them)."""
  def make_loss():
    x = tf.Variable(lambda: tf.zeros([]), name="x")
    loss = tf.square(x - 1.0)
    return tf.where(tf.abs(x) > 0.5 * steps * 1e-3, loss * np.nan, loss)
  return make_loss


def test_non_finite_meta_step_is_skipped_and_the_nets_stay_finite():
  optimizer = l2l.MetaOptimizer()
  ops = optimizer.meta_minimize(lambda: tf.square(tf.Variable(1.0, name="x")) * np.nan, 2)
  good = optimizer.meta_minimize(quadratic.simple(), 2)
  weights = [v.numpy() for v in optimizer.trainable_variables]
  ops.step()
  assert not bool(ops.applied) and np.isnan(float(ops.grad_norm))
  for before, after in zip(weights, optimizer.trainable_variables):
    np.testing.assert_array_equal(before, after.numpy())
  assert int(ops.optimizer.step) == 0  # Adam's slots and step counter untouched too.
  good.step()
  assert bool(good.applied) and float(good.grad_norm) > 0
  with pytest.raises(FloatingPointError, match="weights .* are NaN or Inf"):
    optimizer.variables[0].assign(optimizer.variables[0] * np.nan)
    optimizer.save("/nonexistent/never-written")


def test_clip_norm_bounds_the_meta_gradient():
  updates = {}
  for clip in (None, 1e-12):
    tf.random.set_seed(0)
    optimizer = l2l.MetaOptimizer()
    ops = optimizer.meta_minimize(quadratic.simple(), 2, learning_rate=0.01, clip_norm=clip)
    before = [v.numpy() for v in optimizer.trainable_variables]
    ops.step()
    updates[clip] = max(float(np.abs(v.numpy() - b).max())
                        for v, b in zip(optimizer.trainable_variables, before))
  # Adam's first step is ±learning_rate per coordinate unless the gradient is far below epsilon.
  assert updates[None] == pytest.approx(0.01, rel=1e-3)
  assert updates[1e-12] < 1e-4
  with pytest.raises(ValueError, match="clip_norm must be positive"):
    l2l.MetaOptimizer().meta_minimize(quadratic.simple(), 2, clip_norm=0.0)


def test_meta_train_stops_after_too_many_non_finite_steps(tmp_path):
  config = training.ProblemConfig(lambda: tf.square(tf.Variable(1.0, name="x")) * np.nan,
                                  "original")
  with pytest.raises(FloatingPointError, match="3 non-finite meta-steps in a row"):
    training.meta_train(config, 10, num_steps=4, unroll_length=2, save_path=str(tmp_path),
                        max_nonfinite=3, checkpoint_every=1)
  assert not (tmp_path / "nets.index").exists()  # Nothing NaN (or at all) saved as the best.


def test_meta_train_skips_a_diverging_problem_and_goes_on():
  """A problem that turns NaN mid-epoch: that unroll is skipped, the next epochs train normally."""
  config = training.ProblemConfig(_nan_after(3), "quadratic")
  result = training.meta_train(config, 3, num_steps=20, unroll_length=5, logging_period=1,
                               evaluation_period=100, learning_rate=0.001)
  assert result.skipped_updates >= 1
  assert all(np.isfinite(v.numpy()).all() for v in result.optimizer.variables)


def test_resume_rejects_a_mismatched_checkpoint(tmp_path):
  kwargs = dict(num_steps=4, unroll_length=2, evaluation_period=100, save_path=str(tmp_path),
                checkpoint_every=1)
  training.meta_train(QUADRATIC, 1, **kwargs)
  with pytest.raises(ValueError, match="does not match this configuration .*preset 'quadratic'"):
    training.meta_train(QUADRATIC, 2, resume=True, preset="quadratic", **{
        **kwargs, "evaluation_period": 100})
  with pytest.raises(FileNotFoundError, match="resume: no checkpoint under"):
    training.meta_train(QUADRATIC, 2, **{**kwargs, "save_path": str(tmp_path / "empty")},
                        resume=True)


def test_smoke_meta_training_on_the_quadratic_beats_tuned_adam():
  """The short version of bench/quadratic_quality.py: 50 epochs (≈ 10 s) instead of 300."""
  result = training.meta_train(QUADRATIC, num_epochs=50, learning_rate=0.01,
                               evaluation_period=25, evaluation_epochs=5, logging_period=25)
  first, last = (entry["meta_loss"] for entry in result.history)
  assert last < 0.8 * first
  learned, adam = _against_adam(result.optimizer, "quadratic", 20, 0.3)
  assert learned < adam - 0.05


def test_smoke_nn_adam_meta_training_on_mnist_beats_the_adam_it_starts_from():
  """The short version of bench/fast_optimizer.py: 20 epochs (≈ 15 s) instead of 300. NN-Adam
  starts as Adam 0.03 (tuned for this problem); after meta-training it does better."""
  result = training.meta_train(problems.get_config("mnist"), num_epochs=20, learning_rate=0.001,
                               preset="nnadam", unroll_length=100, second_derivatives=True, clip_norm=10.0,
                               evaluation_period=10**6, logging_period=10**6)
  learned, adam = _against_adam(result.optimizer, "mnist", 100, 0.03)
  assert learned < adam - 0.04


def _against_adam(optimizer, problem: str, unroll: int, adam_lr: float) -> tuple[float, float]:
  """log10 mean final loss of ``optimizer`` and of Adam(adam_lr) on the same 10 test problems."""
  make_loss = problems.get_config(problem, "test").make_loss
  learned = evaluation.run_epochs(
      evaluation.learned_epoch_runner(optimizer, make_loss, 100, unroll), 10, seed=1)
  adam = evaluation.run_epochs(
      evaluation.baseline_epoch_runner("Adam", adam_lr, make_loss, 100), 10, seed=1)
  return learned["log10_mean_final_loss"], adam["log10_mean_final_loss"]


def test_short_mnist_meta_training_leaves_the_initial_loss():
  """20 epochs of the paper preset on the embedded MNIST subset: validation loss falls from log 10."""
  result = training.meta_train(problems.get_config("mnist"), 20, num_steps=40, unroll_length=20,
                               learning_rate=0.01, preset="paper", evaluation_period=20, evaluation_epochs=3,
                               logging_period=5)
  initial = np.log10(np.log(10))  # Cross-entropy of the untrained MLP: log(10) = 2.30.
  finals = [h["log10_final_loss"] for h in result.history]
  assert finals[0] > initial - 0.05 and finals[-1] < finals[0] - 0.3
  assert result.best_log10_loss < initial - 0.15
