"""The estimator lab on tabular MDPs: exact values, objective and policy gradient
(``exact``), policy-gradient estimators sampled with the engine's own rollout and losses
against the exact gradient (``estimators``), and their report (``report``)."""
from purejaxpg.lab.estimators import (
           ESTIMATORS,
           MDPS,
           exact_quantities,
           make_problem,
           run_lab,
           sample_gradients,
)
from purejaxpg.lab.report import format_table, plot, write_outputs

__all__ = ["ESTIMATORS", "MDPS", "exact_quantities", "format_table", "make_problem", "plot", "run_lab",
           "sample_gradients", "write_outputs"]
