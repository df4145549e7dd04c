"""Looking inside a GPTModel: pure functions, data in, data or a plotly Figure out.

One job per module:

- ``inputs``: ids or text -> one cropped, labelled prompt (and the ``note`` saying what was cut);
- ``attention`` / ``attention_figures``: weights of chosen layers, five scores per head;
- ``trace`` / ``trace_text`` / ``trace_figure``: every forward step with its real shapes, en + zh;
- ``params`` / ``params_figures``: the analytic parameter count, checked against a model;
- ``logit_lens`` / ``logit_lens_figures``: the prediction after every block;
- ``next_token`` / ``next_token_figure``: the distribution before and after each sampling control;
- ``export``: plain JSON and CSV; ``axes``: token axes that stay readable for long prompts.

Every function that runs the model does so under ``torch.inference_mode()``,
in eval mode (restored afterwards), with hooks that are always removed.
"""
from .attention import (SCORE_DOCS, SCORE_NAMES, AttentionCapture, HeadScores, capture_attention,
                        head_scores, repeated_random_tokens)
from .attention_figures import aggregate_figure, head_figure, head_scores_figure, layer_figure
from .logit_lens import LogitLens, TokenTrajectory, logit_lens
from .logit_lens_figures import logit_lens_figure, trajectory_figure
from .next_token import NextTokenDistribution, next_token_distribution, stage_distributions
from .next_token_figure import next_token_figure
from .params import ParamBreakdown, ParamCheck, check_parameters, count_parameters, param_breakdown
from .params_figures import params_bar, params_treemap
from .trace import ShapeTrace, TraceRow, shape_trace
from .trace_figure import trace_figure

__all__ = [
    "SCORE_DOCS", "SCORE_NAMES", "AttentionCapture", "HeadScores", "capture_attention", "head_scores",
    "repeated_random_tokens", "aggregate_figure", "head_figure", "head_scores_figure", "layer_figure",
    "LogitLens", "TokenTrajectory", "logit_lens", "logit_lens_figure", "trajectory_figure",
    "NextTokenDistribution", "next_token_distribution", "stage_distributions", "next_token_figure",
    "ParamBreakdown", "ParamCheck", "check_parameters", "count_parameters", "param_breakdown",
    "params_bar", "params_treemap", "ShapeTrace", "TraceRow", "shape_trace", "trace_figure",
]
