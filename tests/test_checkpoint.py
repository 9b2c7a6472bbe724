"""Saved optimizers: bad saves fail loudly with their path, nothing loads partially or silently."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import l2l
from l2l import checkpoint
from problems import quadratic

SMALL = {"cw": {"net": "CoordinateWiseDeepLSTM", "net_options": {"layers": [4, 4]}}}


@pytest.fixture
def saved(tmp_path):
  """A saved small LSTM optimizer with random weights; returns its directory."""
  optimizer = l2l.MetaOptimizer(**SMALL)
  optimizer.meta_loss(quadratic.simple(), 1)
  for v in optimizer.trainable_variables:
    v.assign(tf.random.normal(v.shape))
  optimizer.save(str(tmp_path))
  return tmp_path


def _edit_config(path, edit):
  config = json.loads((path / checkpoint.CONFIG_FILE).read_text())
  edit(config)
  (path / checkpoint.CONFIG_FILE).write_text(json.dumps(config))


def test_save_writes_no_temporary_files_and_loads_back(saved):
  assert sorted(os.listdir(saved)) == ["config.json", "nets.data-00000-of-00001", "nets.index"]
  loaded = l2l.MetaOptimizer.load(str(saved))
  loaded.meta_loss(quadratic.simple(), 1)
  reader = tf.train.load_checkpoint(str(saved / "nets"))
  np.testing.assert_array_equal(loaded.nets["cw"].w.numpy(),
                                reader.get_tensor("nets/cw/w/.ATTRIBUTES/VARIABLE_VALUE"))


def test_a_config_whose_net_key_is_not_in_the_checkpoint_is_refused(saved):
  _edit_config(saved, lambda c: c["nets"].update(other=c["nets"].pop("cw")))
  with pytest.raises(checkpoint.LoadError, match=rf"at '{saved}' holds weights of nets \['cw'\], "
                     r"which its config.json does not configure \(it names \['other'\]\)"):
    l2l.MetaOptimizer.load(str(saved))


def test_a_config_with_fewer_layers_than_the_checkpoint_is_refused(saved):
  """Every weight of the smaller net has a same-shaped one in the checkpoint: still an error."""
  _edit_config(saved, lambda c: c["nets"]["cw"]["net_options"].update(layers=[4]))
  loaded = l2l.MetaOptimizer.load(str(saved))
  with pytest.raises(checkpoint.LoadError, match=rf"at '{saved}' does not match the net "
                     r"configuration .*net 'cw' has 4 weights, the checkpoint 6"):
    loaded.meta_loss(quadratic.simple(), 1)


def test_a_net_size_mismatch_through_learned_optimizer_names_the_path(saved):
  _edit_config(saved, lambda c: c["nets"]["cw"]["net_options"].update(layers=[5, 4]))
  optimizer = l2l.LearnedOptimizer.load(str(saved))
  variable = tf.Variable(tf.ones([3]))
  with pytest.raises(checkpoint.LoadError, match=rf"at '{saved}' does not match the net "
                     "configuration"):
    optimizer.apply([tf.ones([3])], [variable])


def test_malformed_config_names_its_path(saved):
  (saved / checkpoint.CONFIG_FILE).write_text('{"nets": {')
  with pytest.raises(checkpoint.LoadError, match=rf"{saved}/config.json is not valid JSON"):
    l2l.MetaOptimizer.load(str(saved))
  (saved / checkpoint.CONFIG_FILE).write_text('{"layers": [20]}')
  with pytest.raises(checkpoint.LoadError, match=r"config.json has no \"nets\" entry"):
    l2l.MetaOptimizer.load(str(saved))
  (saved / checkpoint.CONFIG_FILE).write_text('{"nets": {"cw": {"net": "Lstm"}}}')
  with pytest.raises(checkpoint.LoadError, match=r"does not configure valid nets: Unknown net "
                     r"'Lstm'"):
    l2l.MetaOptimizer.load(str(saved))


def test_nan_weights_are_refused_with_their_names(saved):
  optimizer = l2l.MetaOptimizer(**SMALL)
  optimizer.meta_loss(quadratic.simple(), 1)
  optimizer.nets["cw"].w.assign(tf.fill(optimizer.nets["cw"].w.shape, np.nan))
  # MetaOptimizer.save refuses NaN, so write the checkpoint directly, as a crashed tool might.
  tf.train.Checkpoint(nets=optimizer.nets).write(str(saved / "nets"))
  with pytest.raises(checkpoint.LoadError, match=r"holds NaN or Inf in \['nets/cw/w/"):
    l2l.MetaOptimizer.load(str(saved))


def test_corrupt_weights_are_refused(saved):
  (saved / "nets.data-00000-of-00001").write_bytes(b"garbage")
  with pytest.raises(checkpoint.LoadError, match=rf"at '{saved}' is corrupt or truncated"):
    l2l.MetaOptimizer.load(str(saved))


def test_resume_without_a_checkpoint_says_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match="resume: no checkpoint under .*--checkpoint_every"):
    checkpoint.resumable(str(tmp_path), {"x": tf.Variable(1.0)}, True, "test")


def test_shipped_optimizers_load_by_name_and_unknown_names_list_them(tmp_path):
  optimizer = l2l.LearnedOptimizer.load("nnadam-mnist")
  variable = tf.Variable([1.0, -2.0])
  optimizer.apply([tf.constant([0.5, -0.5])], [variable])
  # Its first step is Adam's sign step times the learned step size (a fraction of Adam's 0.03).
  step = variable.numpy() - [1.0, -2.0]
  assert np.all(np.sign(step) == [-1, 1]) and 1e-4 < abs(step[0]) < 0.1
  assert isinstance(l2l.KerasLearnedOptimizer.load("nnadam-mnist"), l2l.KerasLearnedOptimizer)
  with pytest.raises(FileNotFoundError, match=r"no shipped optimizer of that name: the shipped "
                     r"ones are \['celo', 'general', 'nnadam-mnist'\]"):
    l2l.MetaOptimizer.load("general-purpose")
  with pytest.raises(FileNotFoundError, match="No saved optimizer at .*expected .*config.json"):
    l2l.MetaOptimizer.load(str(tmp_path))  # A directory, but not a saved optimizer.


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
