"""Every "what to look at" line is true on the bundled model: each claim a hint makes, measured.

The hints name heads, tokens and effects (playground/examples.py, the Experiments notes, the Circuit,
Saliency and Embeddings notes, the neuron presets); a retrained model that moves a head makes these fail.
"""
from __future__ import annotations

import pytest
import torch

from playground.checkpoints import load_model
from playground.examples import REPEATED_AUSTEN, REPEATED_CAT
from playground.paths import DEFAULT_WEIGHTS
from playground.sampling import SamplingParams
from playground.tokenizer import get_tokenizer


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_WEIGHTS, device="cpu").model


def test_attention_hints_name_a_previous_token_head_and_an_induction_head(model):
    from playground.inspection.head_scores import head_scores
    tok = get_tokenizer()
    cat = head_scores(model, tok.encode(REPEATED_CAT))
    assert cat.top("previous_token", 1)[0][:2] == (3, 2)                        # "layer 3, head 2 looks one back"
    assert cat.previous_token[3, 2] > 0.5
    austen = head_scores(model, tok.encode(REPEATED_AUSTEN))
    assert austen.top("prompt_induction", 1)[0][:2] == (4, 1)                 # "layer 4, head 1: the earlier copy"
    assert austen.induction[4, 1] > 0.5                                        # an induction head on any repeat
    effort = head_scores(model, tok.encode("Every effort moves you"))
    assert effort.previous_token[3, 2] > 0.5


def test_the_logit_lens_hint_the_copy_appears_from_the_induction_heads_block_on(model):
    from playground.inspection.logit_lens import logit_lens
    tok = get_tokenizer()
    ids = tok.encode(REPEATED_AUSTEN)
    lens = logit_lens(model, ids, tokenizer=tok, top_k=1)
    top = torch.as_tensor(lens.top_ids)[..., 0]                               # (L+1, T): after embed, blocks 0..5
    start = next(i for i in range(2, len(ids)) if ids[i:i + 3] == ids[1:4])   # the second copy's " is a truth"
    second = range(start, len(ids) - 1)                                        # its positions whose next is known
    right = lambda stage: sum(int(top[stage, t]) == ids[t + 1] for t in second) / len(second)   # noqa: E731
    assert right(5) >= 0.5 and right(6) >= 0.5                                # after block 4 (the induction head's)
    assert right(4) <= 0.2 and right(0) <= 0.2                                 # not before


def test_the_next_token_hints(model):
    from playground.inspection.next_token import next_token_distribution
    tok = get_tokenizer()
    d = next_token_distribution(model, tok.encode(REPEATED_AUSTEN), tokenizer=tok)
    assert d.rows()[0]["token_id"] == tok.encode(" in")[0]                   # "' in' wins"
    wide = next_token_distribution(model, tok.encode("Every effort moves you"), SamplingParams(1.0, None, 0.9),
                                   tokenizer=tok)
    assert 10 < wide.n_kept < model.cfg.vocab_size                             # top-p 0.9 keeps some, not all


def test_the_surprisal_hint_the_second_copy_turns_cool(model):
    from playground.inspection.surprisal import surprisal
    from playground.ui.tabs.experiments import REPEATED
    tok = get_tokenizer()
    ids = tok.encode(REPEATED)
    bits = surprisal(model, ids, tokenizer=tok).surprisal_bits
    half = len(ids) // 2
    first = [b for b in bits[1:half] if b is not None]
    second = [b for b in bits[half + 3:] if b is not None]
    assert sum(second) / len(second) < 0.5 * sum(first) / len(first)


def test_the_circuit_hint_the_induction_heads_carry_the_copy(model):
    from playground.inspection.circuits import find_circuit
    from playground.ui.views.circuits import EXAMPLES
    ex = EXAMPLES["induction"]
    c = find_circuit(model, ex.clean, ex.corrupted, ex.target, ex.distractor, n_edges=30, tokenizer=get_tokenizer())
    into_logits = [e["upstream"] for e in c.edges if e["downstream"] == "logits"][:5]
    assert {"L4H0", "L4H1"} & set(into_logits)
    assert c.m_clean > c.m_corrupted


def test_the_saliency_hint_the_earlier_name_lights_up(model):
    from playground.inspection.saliency import integrated_gradients
    from playground.ui.tabs.saliency import DEFAULT_TEXT
    tok = get_tokenizer()
    ids = tok.encode(DEFAULT_TEXT)
    s = integrated_gradients(model, ids, tokenizer=tok)
    assert s.target["token_id"] == tok.encode(" Elizabeth")[0]
    name = ids.index(tok.encode(" Elizabeth")[0])
    ranked = sorted(range(len(ids)), key=lambda i: -float(s.scores[i]))
    assert name in ranked[:3]


def test_the_embeddings_hint_months_sit_together(model):
    from playground.inspection.embeddings import default_word_lists
    tok = get_tokenizer()
    lists = default_word_lists()
    emb = model.tok_emb.weight.detach()

    def vectors(words):
        return torch.nn.functional.normalize(emb[[tok.encode(" " + w)[0] for w in words]], dim=-1)
    months, numbers = vectors(lists["months"]), vectors(lists["numbers"])
    within = (months @ months.T).fill_diagonal_(0).sum() / (len(months) * (len(months) - 1))
    across = (months @ numbers.T).mean()
    assert within > across + 0.1


def test_the_neuron_presets_tell_their_story(model, tmp_path, monkeypatch):
    """L5 N271 fires on the number that starts a definition: most of its top contexts peak on a digit."""
    from playground.checkpoints import sha256_file
    from playground.inspection.neuron_index import neuron_index
    from playground.inspection.reference import reference_ids
    monkeypatch.setenv("PLAYGROUND_NEURON_CACHE", str(tmp_path))
    sha = sha256_file(DEFAULT_WEIGHTS)
    name, ref = reference_ids(sha)
    index = neuron_index(model, ref, sha256=sha, reference=name, background=False).result()
    tok = get_tokenizer()
    peaks = [tok.decode([c["token_ids"][c["peak"]]]) for c in index.contexts(5, 271).contexts]
    assert sum(p.strip().isdigit() for p in peaks) >= 15, peaks
