"""Evaluation of finished runs: headline metrics, per-modality utilisation, error analysis.

Classification: accuracy, macro-F1; per modality the unimodal-head accuracy (only where the
method trains the heads), the in-model accuracy of ``W_m z_m + b/M`` alone, and the accuracy with
that modality's latent permuted across samples; the paper's error analysis (fused accuracy within
groups defined by which unimodal predictors are right). Regression: MAE, Pearson r, binary
accuracy excluding zero labels, and the per-modality counterparts.
"""

from mcr.evaluation.evaluate import evaluate_run, evaluate_split

__all__ = ["evaluate_run", "evaluate_split"]
