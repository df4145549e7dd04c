"""Sequence-level unlikelihood: what it marks, and that a step of it makes loops less likely."""
from __future__ import annotations

import torch

from playground.config import GPTConfig
from playground.model import GPTModel
from playground.training.unlikelihood import greedy_continue, repeated_ngram_mask, unlikelihood_loss

TINY = GPTConfig(vocab_size=50, context_length=32, emb_dim=16, n_heads=2, n_layers=2,
                 drop_rate=0.0, qkv_bias=False)


def test_repeated_ngram_mask_marks_every_token_of_a_repeat():
    ids = torch.tensor([[1, 2, 3, 4, 9, 1, 2, 3, 4, 5],
                        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    mask = repeated_ngram_mask(ids, n=4)
    assert mask[0].tolist() == [False] * 5 + [True] * 4 + [False]
    assert not mask[1].any()
    # start: only n-grams ending at or after it count, and nothing before it is marked.
    assert repeated_ngram_mask(ids, n=4, start=7)[0].tolist() == [False] * 7 + [True, True, False]
    assert not repeated_ngram_mask(ids, n=4, start=9)[0].any()


def test_greedy_continue_appends_argmax_tokens():
    torch.manual_seed(0)
    model = GPTModel(TINY).eval()
    prefix = torch.tensor([[3, 4, 5]])
    out = greedy_continue(model, prefix, 5)
    assert out.shape == (1, 8) and out[0, :3].tolist() == [3, 4, 5]
    with torch.no_grad():
        assert int(model(out[:, :3])[0, -1].argmax()) == int(out[0, 3])


def _looping_model() -> GPTModel:
    """A tiny model trained to continue any token t with t + 1 (mod 4): it loops 0 1 2 3 0 1 ..."""
    torch.manual_seed(0)
    model = GPTModel(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    seq = torch.arange(32) % 4
    for _ in range(60):
        logits = model(seq[None, :-1])
        loss = torch.nn.functional.cross_entropy(logits[0], seq[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_unlikelihood_steps_break_a_loop():
    model = _looping_model()
    prefix = torch.tensor([[0, 1, 2, 3]])
    loss, share = unlikelihood_loss(model, prefix, 12)
    assert share > 0.5 and loss.item() > 0        # the loop is found and penalised
    before = repeated_ngram_mask(greedy_continue(model, prefix, 12), start=4).float().mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss, _ = unlikelihood_loss(model, prefix, 12)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = repeated_ngram_mask(greedy_continue(model, prefix, 12), start=4).float().mean()
    assert after < before


def test_no_repeats_give_zero_loss_with_a_gradient_path():
    torch.manual_seed(1)
    model = GPTModel(TINY.replace(vocab_size=50))
    prefix = torch.tensor([[1, 2, 3, 4]])
    ids = greedy_continue(model, prefix, 3)          # too short for a repeated 4-gram
    assert not repeated_ngram_mask(ids, start=4).any()
    loss, share = unlikelihood_loss(model, prefix, 3)
    assert share == 0.0 and loss.item() == 0.0
    loss.backward()                                  # no error: the graph exists


def test_greedy_continue_matches_full_forwards():
    torch.manual_seed(2)
    model = GPTModel(TINY).eval()
    prefix = torch.tensor([[1, 7, 3], [4, 4, 9]])
    out = greedy_continue(model, prefix, 6)
    ids = prefix
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ids)


def test_own_only_marks_loops_but_not_copies_of_the_prefix():
    prefix = [1, 2, 3, 4, 5]
    cont = [1, 2, 3, 4, 7, 8, 9, 10, 7, 8, 9, 10]          # copies the prefix, then loops on itself
    ids = torch.tensor([prefix + cont])
    both = repeated_ngram_mask(ids, 4, start=len(prefix))[0, len(prefix):].tolist()
    own = repeated_ngram_mask(ids, 4, start=len(prefix), own_only=True)[0, len(prefix):].tolist()
    assert both[:4] == [True] * 4                           # the copy of the prefix counts as a repeat
    assert own[:4] == [False] * 4                           # ... unless only the model's own text counts
    assert both[8:] == own[8:] == [True] * 4                # the loop is marked either way
