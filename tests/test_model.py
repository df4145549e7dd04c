import pytest
import torch

from playground.config import GPTConfig
from playground.hooks import capture, hooks
from playground.model import GPTModel

from tests.factories import make_model


def test_logits_shape(tiny_model):
    idx = torch.randint(0, 50257, (3, 7))
    assert tiny_model(idx).shape == (3, 7, 50257)


def test_fast_and_explicit_paths_agree(tiny_model):
    idx = torch.randint(0, 50257, (2, 20), generator=torch.Generator().manual_seed(1))
    fast = tiny_model(idx)
    tiny_model.set_explicit_attention(True)
    explicit = tiny_model(idx)
    tiny_model.set_explicit_attention(False)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)


def test_hooks_pick_explicit_path_and_are_removed(tiny_model):
    idx = torch.tensor([[1, 2, 3, 4, 5]])
    att = tiny_model.trf_blocks[0].att
    assert not att.wants_weights()
    with capture(tiny_model, ["trf_blocks.0.att.hook_pattern"]) as store:
        assert att.wants_weights()
        tiny_model(idx)
    pattern = store["trf_blocks.0.att.hook_pattern"]
    assert pattern.shape == (1, 4, 5, 5)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(1, 4, 5))
    assert torch.all(pattern.triu(1) == 0)
    assert not att.wants_weights()


def test_hooks_removed_after_error(tiny_model):
    def bad(t, name):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with hooks(tiny_model, {"trf_blocks.1.att.hook_pattern": bad}):
            tiny_model(torch.tensor([[1, 2]]))
    assert all(not m._forward_hooks for m in tiny_model.modules())
    with pytest.raises(KeyError, match="no hook point"):
        with hooks(tiny_model, {"nope": bad}):
            pass


def test_hook_can_intervene(tiny_model):
    idx = torch.tensor([[5, 6, 7]])
    base = tiny_model(idx)
    with hooks(tiny_model, {"hook_final_norm": lambda t, n: torch.zeros_like(t)}):
        zeroed = tiny_model(idx)
    assert torch.count_nonzero(zeroed) == 0 and torch.count_nonzero(base) > 0


def test_kv_cache_matches_full_forward(tiny_model):
    idx = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(2))
    full = tiny_model(idx)
    cache = tiny_model.new_cache(2)
    parts = [tiny_model(idx[:, :5], cache), tiny_model(idx[:, 5:6], cache), tiny_model(idx[:, 6:], cache)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 12


def test_context_overflow_is_an_error(tiny_model):
    with pytest.raises(ValueError, match="exceed the context length 32"):
        tiny_model(torch.zeros(1, 33, dtype=torch.long))


def test_tied_head_shares_storage():
    m = GPTModel(GPTConfig(vocab_size=10, context_length=4, emb_dim=8, n_heads=2, n_layers=1,
                           tie_embeddings=True))
    assert m.out_head.weight is m.tok_emb.weight


def test_dropout_only_in_training():
    cfg = GPTConfig(vocab_size=20, context_length=8, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.5)
    m = make_model(cfg)
    idx = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(m(idx), m(idx))
    m.train()
    assert not torch.equal(m(idx), m(idx))


def test_a_forward_pre_hook_on_a_hook_point_fires(tiny_model):
    """A pre-hook alone (no forward hook) must still take the explicit attention path."""
    fired = []
    point = tiny_model.trf_blocks[0].att.hook_pattern
    handle = point.register_forward_pre_hook(lambda module, args: fired.append(args[0].shape))
    try:
        assert point.has_hooks()
        with torch.no_grad():
            tiny_model(torch.tensor([[1, 2, 3, 4]]))
    finally:
        handle.remove()
    assert fired == [torch.Size([1, 4, 4, 4])]
    assert not point.has_hooks()
