"""Meta-training guards (non-finite steps, clipping), checkpoint errors and evaluation diagnostics."""

import numpy as np
import pytest
import tensorflow as tf

import l2l
import problems
from l2l import evaluation
from l2l import training
from problems import quadratic


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


def test_meta_train_stops_after_too_many_non_finite_steps(monkeypatch, tmp_path):
  monkeypatch.setitem(problems._CONFIGS, "nan", lambda mode, data_dir: problems.ProblemConfig(
      lambda: tf.square(tf.Variable(1.0, name="x")) * np.nan, "original"))
  with pytest.raises(FloatingPointError, match="3 non-finite meta-steps in a row"):
    training.meta_train("nan", 10, num_steps=4, unroll_length=2, save_path=str(tmp_path),
                        max_nonfinite=3, checkpoint_every=1)
  assert not (tmp_path / "nets.index").exists()  # Nothing NaN (or at all) saved as the best.


def test_meta_train_skips_a_diverging_problem_and_goes_on(monkeypatch):
  """A problem that turns NaN mid-epoch: that unroll is skipped, the next epochs train normally."""
  monkeypatch.setitem(problems._CONFIGS, "late-nan", lambda mode, data_dir: problems.ProblemConfig(
      _nan_after(3), "quadratic"))
  result = training.meta_train("late-nan", 3, num_steps=20, unroll_length=5, logging_period=1,
                               evaluation_period=100, learning_rate=0.001)
  assert result.skipped_updates >= 1
  assert all(np.isfinite(v.numpy()).all() for v in result.optimizer.variables)


def test_resume_rejects_a_mismatched_checkpoint(tmp_path):
  kwargs = dict(num_steps=4, unroll_length=2, evaluation_period=100, save_path=str(tmp_path),
                checkpoint_every=1)
  training.meta_train("quadratic", 1, **kwargs)
  with pytest.raises(ValueError, match="does not match this configuration .*preset 'quadratic'"):
    training.meta_train("quadratic", 2, resume=True, preset="quadratic", **{
        **kwargs, "evaluation_period": 100})
  with pytest.raises(FileNotFoundError, match="resume: no checkpoint under"):
    training.meta_train("quadratic", 2, **{**kwargs, "save_path": str(tmp_path / "empty")},
                        resume=True)


def test_corrupt_or_mismatched_saved_optimizer_is_explained(tmp_path):
  optimizer = l2l.MetaOptimizer()
  optimizer.meta_loss(quadratic.simple(), 2)
  optimizer.save(str(tmp_path))
  config = (tmp_path / "config.json").read_text()
  (tmp_path / "config.json").write_text(config.replace("20,\n", "10,\n", 1))
  loaded = l2l.MetaOptimizer.load(str(tmp_path))
  with pytest.raises(ValueError, match="does not match the net configuration in its config.json"):
    loaded.meta_loss(quadratic.simple(), 2)
  (tmp_path / "nets.data-00000-of-00001").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="is corrupt or truncated"):
    l2l.MetaOptimizer.load(str(tmp_path))


def test_diagnose_the_sgd_net_matches_sgd_step_by_step():
  make_loss = quadratic.quadratic(batch_size=4, num_dims=3)
  sgd_net = l2l.MetaOptimizer(cw={"net": "Sgd", "net_options": {"learning_rate": 0.05}})
  results = []
  for name, optimizer in (("L2L", sgd_net), ("SGD", None)):
    problems.seed_problem(make_loss, 4)
    results.append(evaluation.diagnose(name, make_loss, 10, 2, learning_rate=0.05,
                                       optimizer=optimizer))
  learned, sgd = results
  assert learned["num_coordinates"] == 12
  for key in ("loss", "mean_abs_update", "fraction_moving"):
    np.testing.assert_allclose(learned[key], sgd[key], rtol=1e-5)
  assert len(sgd["loss"]) == 11 and sgd["loss"][-1] < sgd["loss"][0]
  assert sgd["fraction_moving"][0] == 1.0 and sgd["mean_abs_update"][0] > 0
