"""Running optimizers on fresh problems: the step-by-step diagnostics."""

import numpy as np

import l2l
import problems
from l2l import evaluation
from problems import quadratic


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
