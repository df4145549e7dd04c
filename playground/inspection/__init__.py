"""Looking inside a GPTModel: pure functions, data in, data or a plotly Figure out.

One job per module:

- ``inputs``: ids or text -> one cropped, labelled prompt (and the ``note`` saying what was cut);
- ``attention``: weights of chosen layers, five scores per head;
- ``trace`` / ``trace_text``: every forward step with its real shapes, en + zh;
- ``params``: the analytic parameter count, checked against a model;
- ``logit_lens``: the prediction after every block;
- ``next_token``: the distribution before and after each sampling control;
- ``surprisal``, ``ablation``, ``attribution``, ``patching``, ``compare``: experiments;
- ``walkthrough``, ``kv_view``, ``sampling_tree``: one forward pass step by step, the KV cache, the
  sampling tree;
- ``circuits`` (with ``circuit_graph``, ``circuit_forward``, ``circuit_result``): edge attribution
  patching over the graph of heads and MLPs, the top-N circuit, its exact faithfulness;
- ``neurons``, ``neuron_index`` (+ ``reference``), ``embeddings``, ``saliency``, ``qk``: what the
  model has learned — MLP neurons (activations, direct effect, top-activating contexts over a
  reference text, built in the background and cached on disk), embedding / residual PCA, input
  saliency (gradient x input, integrated gradients), one attention weight taken apart;
- ``export``: plain JSON and CSV.

Every figure lives in ``figures/`` (``figures.attention``, ``figures.logit_lens``, ...): this
package imports no plotly, so training and the API do not pay for it.

Every function that runs the model does so under ``torch.inference_mode()``,
in eval mode (restored afterwards), with hooks that are always removed.
"""
from .attention import AttentionCapture, capture_attention
from .head_scores import SCORE_DOCS, SCORE_NAMES, HeadScores, head_scores
from .random_tokens import repeated_random_tokens
from .logit_lens import LogitLens, TokenTrajectory, logit_lens
from .next_token import NextTokenDistribution, next_token_distribution, stage_distributions
from .params import ParamBreakdown, ParamCheck, check_parameters, count_parameters, param_breakdown
from .trace import ShapeTrace, TraceRow, shape_trace

__all__ = [
    "SCORE_DOCS", "SCORE_NAMES", "AttentionCapture", "HeadScores", "capture_attention", "head_scores",
    "repeated_random_tokens",
    "LogitLens", "TokenTrajectory", "logit_lens",
    "NextTokenDistribution", "next_token_distribution", "stage_distributions",
    "ParamBreakdown", "ParamCheck", "check_parameters", "count_parameters", "param_breakdown",
    "ShapeTrace", "TraceRow", "shape_trace",
]
