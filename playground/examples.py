"""Example prompts of every tab, each with a line on what to look at, and the prompts of the benchmark.

Every example is chosen to show something on the bundled model (``weights/default.safetensors``):
``tests/test_examples.py`` checks that none makes it loop under greedy decoding and that the
copying examples are copied.
"""
from __future__ import annotations

from dataclasses import dataclass

REPEATED_AUSTEN = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                   "must be in want of a wife. It is a truth universally acknowledged, that a single man")
REPEATED_CAT = "The cat sat on the mat. The cat sat on the"


@dataclass(frozen=True)
class Example:
    prompt: str
    note: str            # one line: what to look at


EXAMPLES: dict[str, tuple[Example, ...]] = {
    "generate": (
        Example("Every effort moves you",
                "The book's own prompt (chapter 4). Greedy (temperature 0) gives the model's single most likely "
                "text, which soon repeats itself; a temperature of 0.8 with top-k 40 reads better."),
        Example("It is a truth universally acknowledged, that a single man",
                "Austen's first line: the model has read her six novels, so it continues in her voice."),
        Example("Fellow-Citizens of the Senate and of the House of Representatives:",
                "How every State of the Union address begins: watch it slip into the register of a president."),
        Example("Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, "
                "seemed to unite some of the best blessings of existence. Emma Woodhouse, handsome,",
                "A passage shown once and begun again: the model copies it (its induction head), then goes on."),
        Example("The President said",
                "A short prompt: click any generated token to see what else it could have been."),
        Example("Once upon a time",
                "The corpus has no fairy tales: the model answers in the voice it knows best."),
    ),
    "attention": (
        Example(REPEATED_AUSTEN,
                "Open layer 4, head 1 (the induction head): each token of the second copy looks at the token "
                "that followed it the first time, a diagonal stripe."),
        Example(REPEATED_CAT,
                "A short repeat: layer 3, head 2 looks one token back; layer 4, head 1 looks for the earlier copy."),
        Example("Every effort moves you",
                "Layer 3, head 2 is a previous-token head: every token looks at the one just before it."),
    ),
    "logit-lens": (
        Example(REPEATED_AUSTEN,
                "In the second copy the right next word appears from the induction head's block on, not before."),
        Example("Every effort moves you",
                "The embeddings row predicts the commonest continuations of each token alone; the blocks "
                "refine it."),
    ),
    "next-token": (
        Example(REPEATED_AUSTEN,
                "' in' wins because the sentence was shown before (the model copies it); try a high temperature."),
        Example("Every effort moves you",
                "A wide distribution: top-p 0.9 keeps only the tokens that make up 90% of the mass."),
    ),
}

# The Generate examples, in order: also the benchmark's prompts.
EXAMPLE_PROMPTS: list[str] = [e.prompt for e in EXAMPLES["generate"]]


def prompts(tab: str) -> list[str]:
    return [e.prompt for e in EXAMPLES.get(tab, ())]


def note_for(tab: str, prompt: str) -> str:
    """The note of the example whose prompt this is (empty for the user's own text)."""
    return next((e.note for e in EXAMPLES.get(tab, ()) if e.prompt == prompt), "")
