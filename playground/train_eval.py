"""``python -m playground.train_eval``: the evaluation report (:mod:`playground.training.report`)."""
from .training.report import evaluate_weights, main

__all__ = ["evaluate_weights", "main"]

if __name__ == "__main__":
    main()
