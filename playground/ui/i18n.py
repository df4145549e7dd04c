"""English and 中文: one table for every text the app shows, and where each language comes from.

Component texts (labels, buttons, tab names, radio choices, notes) go to Gradio's own ``gr.I18n``:
:func:`localize` swaps each known string of a built page for its key, and the browser shows it in its
language. Texts computed on the server — figure titles and axes, notes, messages — pass through
:func:`tr` on their way out (see ``common.guarded``), in the request's language (:func:`lang_of`).

The language: ``?lang=zh`` / ``?lang=en`` in the URL, else the browser's (Accept-Language, and the
frontend's own ``navigator.language``). The header switch changes both at once (``SWITCH_JS``) and the
open tab redraws. Token text is never translated: it is data, not interface.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

import gradio as gr

LANGS = ("en", "zh")
LANG_CHOICES = [("English", "en"), ("中文", "zh")]
# The frontend matches the browser's language exactly: our 中文 answers every Chinese tag it may send.
ZH_LOCALES = ("zh", "zh-CN", "zh-SG", "zh-Hans", "zh-TW", "zh-HK", "zh-Hant")

LOCALE_DIR = Path(__file__).with_name("locales")


def load_locale(lang: str = "zh") -> tuple[dict[str, str], dict[str, str]]:
    """``(texts, patterns)`` English -> ``lang`` from ``locales/<lang>.json``: sections in order, merged
    (a later entry wins, as in one dict); the patterns keep their order (the first that matches wins)."""
    data = json.loads((LOCALE_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    merged = [{k: v for section in data[part] for k, v in section["entries"].items()} for part in ("text", "patterns")]
    return merged[0], merged[1]


TEXT, PATTERNS = load_locale("zh")


# The Parameters treemap shows each part's name above its code name: the name alone has its entry too.
_PART_NAMES = [k for k in TEXT if re.fullmatch(r"[a-zA-Z -]+ \((att\.|ff\.|tok_emb|pos_emb|norm|final_norm|out_head).*\)", k)]
TEXT.update({k.split(" (")[0]: TEXT[k].split(" (")[0] for k in _PART_NAMES})


def _key(text: str) -> str:
    """A Gradio i18n key: no dots (its lookup reads them as paths), stable across runs."""
    return "t" + hashlib.sha1(text.encode()).hexdigest()[:12]


def _compile(pattern: str) -> re.Pattern:
    parts = [re.escape(p) for p in pattern.split("{}")]
    return re.compile("(.+?)".join(parts) + r"\Z", re.S)


_PATTERNS = [(_compile(en), zh) for en, zh in PATTERNS.items()]


# Texts a built page showed that only a pattern translates (a note with its example, a step count): the
# page's own keys, added by ``localize`` before the app launches with ``gradio_i18n()``.
_PAGE_TEXT: dict[str, str] = {}


def gradio_i18n() -> gr.I18n:
    """Every key of ``TEXT`` (and of the pages built so far) in English and 中文 (under each Chinese tag a
    browser may send)."""
    table = {**TEXT, **_PAGE_TEXT}
    en = {_key(k): k for k in table}
    zh = {_key(k): v for k, v in table.items()}
    return gr.I18n(en=en, **{loc: zh for loc in ZH_LOCALES})


def clean_lang(value: Any) -> str | None:
    """``"zh"`` for any Chinese tag (zh, zh-CN, zh_TW, cn...), ``"en"`` for English ones, else None: the one
    reading of a language, for links and for Accept-Language alike."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower().replace("_", "-")
    if v.startswith("zh") or v in ("中文", "cn"):
        return "zh"
    if v.startswith("en") or v == "english":
        return "en"
    return None


def lang_of(request: Any) -> str:
    """The request's language: ``?lang=`` on the page's URL, else the first Accept-Language we have."""
    if request is None:
        return "en"
    try:
        lang = clean_lang(dict(request.query_params).get("lang"))
        if lang:
            return lang
        header = request.headers.get("accept-language", "") or ""
    except Exception:                               # a request object without these: English
        return "en"
    for part in header.split(","):
        lang = clean_lang(part.split(";")[0])
        if lang:
            return lang
    return "en"


def current_lang() -> str:
    """The language of the event being handled (English outside one)."""
    from gradio.context import LocalContext
    return lang_of(LocalContext.request.get(None))


def tr(text: Any, lang: str) -> Any:
    """``text`` in ``lang``: the table's entry, else a pattern's, else the text as it is. Lines (``\\n``,
    ``<br>``, ``<sup>``) are translated one by one, so a title and its subtitle each find theirs."""
    if lang != "zh" or not isinstance(text, str) or not text.strip():
        return text
    if text in TEXT:
        return TEXT[text]
    one_line = "<br>" not in text and "\n" not in text
    repeated = re.fullmatch(r"(.+) x (\d+)", text) if one_line else None
    if repeated and repeated.group(1) in TEXT:        # a part in every block: before any shorter pattern
        return f"{TEXT[repeated.group(1)]} x {repeated.group(2)}"
    if one_line:
        found = _pattern(text, lang)
        if found is not None:
            return found
    for sep in ("<br>", "\n"):
        if sep in text:
            return sep.join(tr(part, lang) for part in text.split(sep))
    m = re.fullmatch(r"(\s*(?:<[^<>]+>)+)(.*?)((?:</?[^<>]+>)*\s*)|(\s*(?:<[^<>]+>)*)(.*?)((?:</?[^<>]+>)+\s*)",
                     text, re.S)
    if m:                                      # tags around the text (a subtitle's <sup>, a span): keep them
        pre, mid, post = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        if mid and mid != text:
            return pre + tr(mid, lang) + post
    return text


def _pattern(text: str, lang: str) -> str | None:
    for regex, zh in _PATTERNS:
        found = regex.match(text)
        if found:
            return zh.format(*(tr(g, lang) for g in found.groups()))
    return None


def tr_figure(fig: Any, lang: str) -> Any:
    """A plotly figure's titles, axis and colour-bar titles, legend names, annotations and buttons in ``lang``."""
    if lang != "zh" or fig is None or not hasattr(fig, "layout"):
        return fig
    fig = type(fig)(fig)                  # a copy: a figure may be shared (a cache, a page's first value)
    lay = fig.layout
    if lay.title and lay.title.text:
        lay.title.text = tr(lay.title.text, lang)
    for name in list(lay):
        if (name.startswith("xaxis") or name.startswith("yaxis")) and lay[name] is not None:
            axis = lay[name]
            if axis.title and axis.title.text:
                axis.title.text = tr(axis.title.text, lang)
        if name.startswith("coloraxis") and lay[name] is not None and lay[name].colorbar.title.text:
            lay[name].colorbar.title.text = tr(lay[name].colorbar.title.text, lang)
    for ann in lay.annotations or ():
        if ann.text:
            ann.text = tr(ann.text, lang)
    for menu in lay.updatemenus or ():
        for button in menu.buttons or ():
            button.label = tr(button.label, lang)
    meta = lay.meta if isinstance(lay.meta, dict) else {}
    for name in meta.get("i18n_ticks", ()):           # axes whose tick labels are interface text
        if lay[name] is not None and lay[name].ticktext:
            lay[name].ticktext = [tr(t, lang) for t in lay[name].ticktext]
    for dim in meta.get("i18n_categories", ()):       # traces whose x (or y, labels) values are interface text
        for trace in fig.data:
            values = getattr(trace, dim, None) if dim in trace else None
            if values is not None:
                setattr(trace, dim, [tr(v, lang) for v in values])
    for name in meta.get("i18n_axes", ()):            # a category order given by name follows the names
        axis = lay[name]
        if axis is not None and axis.categoryarray is not None:
            axis.categoryarray = [tr(v, lang) for v in axis.categoryarray]
    for trace in fig.data:
        if getattr(trace, "name", None):
            trace.name = tr(trace.name, lang)
        if trace.type == "table" and trace.header.values is not None:     # column names, not the cells
            trace.header.values = [tr(v, lang) for v in trace.header.values]
        if isinstance(getattr(trace, "hovertemplate", None), str):
            trace.hovertemplate = tr(trace.hovertemplate, lang)
        if "colorbar" in trace and trace.colorbar.title.text:
            trace.colorbar.title.text = tr(trace.colorbar.title.text, lang)
    return fig


def tr_output(value: Any, lang: str, keep_value: bool = False) -> Any:
    """One handler output in ``lang``: a figure, a text, or a ``gr.update`` (its label, value, headers).
    ``keep_value``: the value is the user's or the model's text (a text box, a table): only its label."""
    if lang != "zh":
        return value
    if isinstance(value, dict) and value.get("__type__") == "update":
        out = dict(value)
        for k in ("label", "info", "placeholder"):
            if isinstance(out.get(k), str):
                out[k] = tr(out[k], lang)
        if "value" in out and not keep_value:
            out["value"] = tr_output(out["value"], lang)
        if isinstance(out.get("headers"), list):
            out["headers"] = [tr(h, lang) for h in out["headers"]]
        return out
    if keep_value:
        return value
    if hasattr(value, "layout") and hasattr(value, "data"):
        return tr_figure(value, lang)
    if isinstance(value, str):
        return tr(value, lang)
    return value


def tr_outputs(result: Any, lang: str) -> Any:
    """A handler's result (one value, a tuple, or a ``{component: value}`` dict) in ``lang``. Only notes
    (Markdown) and figures have their value translated; every other component keeps its value (the user's
    or the model's text, a table, a radio's value) and has only its label translated."""
    if lang != "zh":
        return result
    if isinstance(result, dict) and "__type__" not in result:
        return {c: _table(c, v, lang) if _has_headers(c, v) else tr_output(v, lang, keep_value=not _is_note(c))
                for c, v in result.items()}
    if isinstance(result, tuple):
        return tuple(tr_figure(v, lang) if hasattr(v, "layout") else v for v in result)
    return tr_figure(result, lang) if hasattr(result, "layout") else result


def has_own_headers(component: Any) -> bool:
    """A table built with named headers (not Gradio's default "1", "2", "3")."""
    headers = getattr(component, "headers", None)
    return type(component).__name__ == "Dataframe" and isinstance(headers, list) and \
        any(re.search("[A-Za-z]{2,}", str(h)) for h in headers)


def _has_headers(component: Any, value: Any) -> bool:
    return isinstance(value, list) and has_own_headers(component)


def _table(component: Any, rows: list, lang: str) -> dict:
    """Rows for a table: the values as they are, the component's own headers in ``lang``."""
    return gr.update(value=rows, headers=[tr(h, lang) for h in component.headers])


def table_headers(component: Any, lang: str) -> Any:
    """A table's own headers in ``lang`` (its rows untouched), or a skip for a table without any."""
    headers = getattr(component, "headers", None)
    if not isinstance(headers, list) or not headers:
        return gr.skip()
    return gr.update(headers=[tr(h, lang) for h in headers])


def _is_note(component: Any) -> bool:
    return type(component).__name__ in ("Markdown", "Plot")


def tr_html(html: str, lang: str) -> str:
    """The sentences of an HTML fragment in ``lang``; short texts (a token's own span) are left alone, so
    token text is never translated."""
    if lang != "zh":
        return html
    parts = re.split(r"(<[^>]+>)", html)
    return "".join(p if p.startswith("<") or p.count(" ") < 2 else tr(p, lang) for p in parts)


# ----------------------------------------------------------------------------------- the page

TEXT_ATTRS = ("label", "info", "placeholder")
VALUE_KINDS = ("Button", "Markdown", "DownloadButton", "UploadButton")


def localize(blocks: Iterable[Any]) -> list[str]:
    """Give every component text that the table knows its i18n key (call inside ``gr.Blocks`` before it
    closes). Returns the English texts found that the table lacks (the completeness test reads them)."""
    missing: list[str] = []
    i18n = gradio_i18n()

    def swap(text: Any) -> Any:
        if isinstance(text, str) and text.strip():
            if text in TEXT:
                return i18n(_key(text))
            zh = tr(text, "zh")
            if zh != text:
                _PAGE_TEXT[text] = zh
                return i18n(_key(text))
            if _needs_translation(text):
                missing.append(text)
        return text

    for block in blocks:
        kind = type(block).__name__
        for attr in TEXT_ATTRS:
            if hasattr(block, attr):
                setattr(block, attr, swap(getattr(block, attr)))
        if kind in VALUE_KINDS:
            block.value = swap(block.value)
        if kind in ("Radio", "Dropdown", "CheckboxGroup") and getattr(block, "choices", None):
            block.choices = [(swap(d), v) for d, v in block.choices]
    return missing


def _needs_translation(text: str) -> bool:
    """English words in it (not a model name, a number, a symbol or a file name)."""
    words = re.findall(r"[A-Za-z]{3,}", text)
    return bool(words) and not re.fullmatch(NOT_UI_TEXT, text.strip())


# Names that stay as they are in every language: files, model names, the language switch's own choices.
NOT_UI_TEXT = r"[\w.\-/]+\.(safetensors|json)|gpt2[\w-]*|book-124M|\d+(st|nd|rd|th)|English"


SWITCH_JS = """(lang) => {
  const url = new URL(location.href); url.searchParams.set("lang", lang); history.replaceState(null, "", url);
  window.__playgroundLocale && window.__playgroundLocale(lang);
  return lang;
}"""

# Run once at load (with the keyboard script): the header switch's way to Gradio's locale store, which lives
# in its core module; the page has already loaded it, so importing it again returns that same module. A
# ?lang= in the URL needs none of this: EARLY_LOCALE_SCRIPT applies it before Gradio mounts.
LOCALE_JS = """
  window.__playgroundLocale = async (lang) => {
    const url = performance.getEntriesByType("resource").map(e => e.name)
      .find(n => /\\/assets\\/core-[^/]*\\.js$/.test(n));
    if (!url) return;
    const core = await import(url);
    core.changeLocale && core.changeLocale(lang === "zh" ? "zh-CN" : "en");
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  };
"""


# Before Gradio's own scripts run, a ?lang= in the URL stands in for the browser's language: Gradio picks
# its locale once, from navigator.language, as the page mounts (changing it later leaves some texts behind).
EARLY_LOCALE_SCRIPT = b"""<script>(function () {
  var lang = new URLSearchParams(location.search).get("lang");
  var tag = lang === "zh" ? "zh-CN" : lang === "en" ? "en" : null;
  if (!tag) return;
  try {
    Object.defineProperty(navigator, "language", {get: function () { return tag; }});
    Object.defineProperty(navigator, "languages", {get: function () { return [tag]; }});
    document.documentElement.lang = tag;
  } catch (e) {}
})();</script>"""


class EarlyLocale:
    """ASGI middleware: puts ``EARLY_LOCALE_SCRIPT`` first in the ``<head>`` of every HTML page it serves."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict = {}
        body: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    start["pass"] = True
                    await send(message)
                    return
                start["message"] = message
                return
            if start.get("pass"):
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            html = b"".join(body).replace(b"<head>", b"<head>" + EARLY_LOCALE_SCRIPT, 1)
            msg = start["message"]
            headers = [(k, v) for k, v in msg.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(html)).encode()))
            await send({**msg, "headers": headers})
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, capture)
