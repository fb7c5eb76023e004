from lightning_siamese.evaluation.baselines import Baseline, make_baseline
from lightning_siamese.evaluation.oneshot import (
    OneShotResult,
    episode_accuracies,
    evaluate_episodes,
    mean_ci95,
    summarize,
)
from lightning_siamese.evaluation.verification import (
    VerificationResult,
    best_threshold,
    equal_error_rate,
    kfold_accuracy,
    verification_metrics,
)

__all__ = [
    "Baseline",
    "OneShotResult",
    "VerificationResult",
    "best_threshold",
    "episode_accuracies",
    "equal_error_rate",
    "evaluate_episodes",
    "kfold_accuracy",
    "make_baseline",
    "mean_ci95",
    "summarize",
    "verification_metrics",
]
