"""A short glossary, reachable from every tab (the foot of the page), in English and 中文."""
from __future__ import annotations

# (term, explanation): the words a view uses that a student may not know yet.
TERMS: tuple[tuple[str, str], ...] = (
    ("token", "a piece of text the model reads as one unit: a word, part of a word, a space or a sign"),
    ("␣ and ↵", "a space at the start of a token, and a line break"),
    ("logit", "the model's raw score for a possible next token; softmax turns the scores into probabilities"),
    ("head", "one of the attention units of a layer: it decides which earlier tokens each token looks at"),
    ("residual stream", "the vector of each token that every block reads from and adds its output to"),
    ("MLP (feed-forward)", "the part of each block that transforms every token on its own; its neurons are "
                           "the outputs of the GELU"),
    ("embedding", "the vector a token (or a position) starts as"),
    ("nats and bits", "units of information: a surprise of 1 bit halves the probability; 1 nat is about 1.44 bits"),
    ("induction head", "a head that finds an earlier copy of the current token and looks at the token that came "
                       "after it, so the model can repeat what it has seen"),
    ("patching", "running the model while replacing one part's value with its value from another prompt"),
)


def glossary_markdown() -> str:
    return "\n".join(f"- **{term}**: {text}." for term, text in TERMS)
