"""``python -m playground.train``: the training command line (:mod:`playground.training.cli`)."""
from .training.cli import build_parser, main, run

__all__ = ["build_parser", "main", "run"]

if __name__ == "__main__":
    main()
