"""Meta-gradient estimators: ``estimate(theta, state, seed) -> (meta_loss, grads, state)``.

Truncated BPTT (``tbptt``) differentiates through one truncation; antithetic ES over a truncation
or a whole unroll (``es``) and persistent ES (``pes``) need only forward unrolls. Each wraps an
``unroll(thetas, unroll_state) -> (losses, unroll_state, reset)``: TBPTT runs every task once at
theta, ES and PES the two halves of every antithetic pair (``family.py`` lays the problems out).
"""

from l2l.estimators.es import EstimatorState, Unroll, antithetic_noise, es_gradient, perturb
from l2l.estimators.es import TruncatedES
from l2l.estimators.family import ESTIMATORS, EstimatorConfig, FamilyEstimate, make_estimator
from l2l.estimators.pes import PES
from l2l.estimators.tbptt import TruncatedBPTT

__all__ = ["ESTIMATORS", "EstimatorConfig", "EstimatorState", "FamilyEstimate", "PES",
           "TruncatedBPTT", "TruncatedES", "Unroll", "antithetic_noise", "es_gradient",
           "make_estimator", "perturb"]
