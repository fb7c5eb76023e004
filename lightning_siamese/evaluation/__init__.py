from lightning_siamese.evaluation.oneshot import OneShotResult, evaluate_episodes, mean_ci95

__all__ = ["OneShotResult", "evaluate_episodes", "mean_ci95"]
