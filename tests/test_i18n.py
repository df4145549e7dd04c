"""English and 中文: the table is complete, patterns keep their numbers, the page's every text is known,
the language comes from ?lang= or the browser, and only interface text is ever translated."""
from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr
import plotly.graph_objects as go
import pytest
from gradio.context import LocalContext

from playground.checkpoints import save_model
from playground.ui import i18n
from playground.ui.i18n import PATTERNS, TEXT, clean_lang, lang_of, localize, tr, tr_figure, tr_outputs
from tests.factories import make_model

CJK = re.compile(r"[\u4e00-\u9fff]")


def request(query: dict | None = None, accept: str = "") -> SimpleNamespace:
    return SimpleNamespace(query_params=query or {}, headers={"accept-language": accept})


def test_every_entry_has_both_languages():
    for en, zh in TEXT.items():
        assert en.strip() and zh.strip(), en
        # Chinese, or a name that reads the same in both (Top-k, logit, GPT-2 Playground's title line...)
        assert CJK.search(zh) or zh == en, (en, zh)
    for en, zh in PATTERNS.items():
        holes = en.count("{}")
        numbered = sorted(int(n) for n in re.findall(r"\{(\d)\}", zh))
        assert holes >= 1 and (zh.count("{}") == holes or numbered == list(range(holes))), (en, zh)


def test_patterns_carry_their_numbers_and_names():
    assert tr("Temperature must be between 0 and 2 (got 5).", "zh") == "温度必须在 0 到 2 之间（收到的是 5）。"
    assert tr("Layer 4, head 1: where each token looks<br><sup>queries 30-69, keys 30-69 of 104 tokens</sup>",
              "zh") == "第 4 层第 1 个头：每个词元看向哪里<br><sup>共 104 个词元中的查询 30-69、键 30-69</sup>"
    assert tr("'␣It' at position 63, layer by layer", "zh") == "位置 63 上的 '␣It'，逐层"
    assert tr("Layer 4, head 1: where each token looks", "en") == "Layer 4, head 1: where each token looks"
    assert tr("something nobody wrote down", "zh") == "something nobody wrote down"


def test_the_language_comes_from_the_link_then_the_browser():
    assert lang_of(request({"lang": "zh"}, "en-US")) == "zh"
    assert lang_of(request({"lang": "en"}, "zh-CN,zh;q=0.9")) == "en"
    assert lang_of(request({}, "zh-TW,en;q=0.5")) == "zh"
    assert lang_of(request({}, "fr-FR,en;q=0.5")) == "en"
    assert lang_of(request({"lang": "klingon"}, "")) == "en" and lang_of(None) == "en"
    assert clean_lang("中文") == "zh" and clean_lang("zh_CN") == "zh" and clean_lang(3) is None


def test_figures_are_translated_on_a_copy_and_tokens_never():
    fig = go.Figure(go.Heatmap(z=[[1]], colorbar=dict(title="weight"),
                               hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>"))
    fig.update_layout(title="Layer 0, head 0: where each token looks", xaxis=dict(title="key (attended to)",
                      tickvals=[0], ticktext=["␣head"]), yaxis_title="query (attending)")
    zh = tr_figure(fig, "zh")
    assert zh.layout.title.text == "第 0 层第 0 个头：每个词元看向哪里" and zh.layout.xaxis.title.text == "键（被关注的）"
    assert zh.data[0].colorbar.title.text == "权重"
    assert zh.data[0].hovertemplate == "查询 %{y}<br>键 %{x}<br>权重 %{z:.4f}<extra></extra>"
    assert list(zh.layout.xaxis.ticktext) == ["␣head"]            # a token stays as it is
    assert fig.layout.title.text.startswith("Layer 0")            # the original is untouched
    table = tr_figure(go.Figure(go.Table(header=dict(values=["position", "token"]), cells=dict(values=[[0], ["head"]]))),
                      "zh")
    assert list(table.data[0].header.values) == ["位置", "词元"] and list(table.data[0].cells.values[1]) == ["head"]
    box, note = gr.Textbox(render=False), gr.Markdown(render=False)
    out = tr_outputs({box: "head", note: "head"}, "zh")
    assert out[box] == "head" and out[note] == "头"                # text boxes hold the user's and model's text


def test_a_handler_answers_in_the_requests_language():
    from playground.ui.common import guarded
    from playground.ui import validate as v

    @guarded
    def ui_temperature(value):
        return {gr.Markdown(render=False): f"{v.real(value, 'Temperature', 0.0, 2.0)} tokens."}

    token = LocalContext.request.set(request({"lang": "zh"}))
    try:
        assert list(ui_temperature(1.5).values()) == ["1.5 个词元。"]
        with pytest.raises(gr.Error) as e:
            ui_temperature(7)
        assert e.value.message.startswith("温度必须") and e.value.title == "请检查你的输入"
    finally:
        LocalContext.request.reset(token)
    assert list(ui_temperature(1.5).values()) == ["1.5 tokens."]


def test_every_text_of_the_built_page_has_a_translation(tmp_path):
    """Every label, button, tab, choice and note the page starts with is in the table (or a pattern)."""
    from playground.ui import ModelHolder, build_demo
    save_model(make_model(), tmp_path / "tiny.safetensors")
    holder = ModelHolder(tmp_path / "tiny.safetensors", device="cpu", hash_in_background=False,
                         prepare_fast_weights=False)
    demo = build_demo(holder, weights_dir=tmp_path)
    assert localize(demo.blocks.values()) == []
    keys = i18n.gradio_i18n().translations
    assert set(keys["en"]) == set(keys["zh-CN"]) == set(keys["zh"])
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs and all(not isinstance(t.label, str) for t in tabs)   # every tab name goes through gr.I18n


def test_a_part_in_every_block_is_translated_whole():
    """'query weights (att.W_query) x 6' is a part name times the blocks, not a 'query {}' hover line."""
    assert tr("query weights (att.W_query) x 6", "zh") == "查询权重 (att.W_query) x 6"
    assert tr("key bias (att.W_key) x 12", "zh") == "键偏置 (att.W_key) x 12"
    assert tr("query 5", "zh") == "查询 5"
    assert tr("**Prompt:** 4 tokens · **generated:** 50 tokens · **speed:** 33.1 tokens/s · **precision:** fp32",
              "zh").startswith("**提示词**：4 个词元")
