import pytest

from playground.config import GPT_CONFIG_124M, PRESETS, GPTConfig, get_preset
from playground.model import GPTModel


@pytest.mark.parametrize("field,value,message", [
    ("emb_dim", 0, "GPTConfig.emb_dim must be positive"),
    ("n_layers", -1, "GPTConfig.n_layers must be positive"),
    ("vocab_size", 2.5, "GPTConfig.vocab_size must be an integer"),
    ("drop_rate", 1.0, "GPTConfig.drop_rate must be in [0, 1)"),
    ("drop_rate", -0.1, "GPTConfig.drop_rate"),
    ("n_heads", 5, "must be divisible by GPTConfig.n_heads"),
    ("qkv_bias", "yes", "GPTConfig.qkv_bias"),
])
def test_validation_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        GPTConfig(**{**GPT_CONFIG_124M, field: value})


def test_presets_match_openai_and_book():
    assert PRESETS["book-124M"] == GPTConfig.from_dict(GPT_CONFIG_124M)
    assert not PRESETS["book-124M"].tie_embeddings and not PRESETS["book-124M"].qkv_bias
    for name, (emb, heads, layers) in {"gpt2": (768, 12, 12), "gpt2-medium": (1024, 16, 24),
                                       "gpt2-large": (1280, 20, 36), "gpt2-xl": (1600, 25, 48)}.items():
        cfg = get_preset(name)
        assert (cfg.emb_dim, cfg.n_heads, cfg.n_layers) == (emb, heads, layers)
        assert cfg.qkv_bias and cfg.tie_embeddings
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("gpt5")


def test_unknown_dict_key_is_rejected():
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({**GPT_CONFIG_124M, "n_layer": 3})


def test_json_round_trip():
    cfg = get_preset("gpt2-medium")
    assert GPTConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("name,expected", [
    ("book-124M", 163_009_536),
    ("gpt2", 124_439_808),
])
def test_counted_parameters_exact(name, expected):
    import torch
    with torch.device("meta"):
        model = GPTModel(get_preset(name))
    assert model.num_parameters() == expected


def test_counted_parameters_big_presets_and_untied():
    import torch
    expected = {"gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
    for name, n in expected.items():
        with torch.device("meta"):
            assert GPTModel(get_preset(name)).num_parameters() == n
    with torch.device("meta"):
        untied = GPTModel(get_preset("gpt2").replace(tie_embeddings=False))
    assert untied.num_parameters() == 163_037_184


def test_book_dict_config_runs():
    import torch
    cfg = {**GPT_CONFIG_124M, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
           "vocab_size": 50}
    model = GPTModel(cfg)
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, 50)
