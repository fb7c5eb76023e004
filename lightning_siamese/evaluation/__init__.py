from lightning_siamese.evaluation.baselines import Baseline, make_baseline
from lightning_siamese.evaluation.oneshot import OneShotResult, episode_accuracies, evaluate_episodes, mean_ci95, summarize

__all__ = ["Baseline", "OneShotResult", "episode_accuracies", "evaluate_episodes", "make_baseline", "mean_ci95", "summarize"]
