"""The browser's part of a talk: keys and clickers, the speaker window and the channel between the windows.

The two windows of a talk (the main one on the projector, the speaker's with ``?notes=1``) are pages of
the same app in the same browser. They talk over a ``BroadcastChannel`` named ``gpt2-playground-deck``
(same origin, no server round trip, nothing leaves the browser):

- the main window posts ``{kind: "state", payload}`` after every move (the payload is ``deckbar.payload``:
  the slide's title, its notes as HTML, the next slide's title, what it needs, the labels);
- the speaker window posts ``{kind: "hello"}`` when it opens (a main window answers with its state) and
  ``{kind: "step", delta: ±1}`` from its buttons and keys, which the main window obeys as its own ← / →.

Keys (not while typing in a box): ← / PageUp the previous slide, → / PageDown the next one (presenter
clickers send PageUp / PageDown). They go to the deck only while one is open; without a deck they keep their
meaning on the open view (Step by step, Attention).
"""
from __future__ import annotations

CHANNEL = "gpt2-playground-deck"

# Runs with the page's own script at load (theme.launch_kwargs puts it in front of theme.KEYS_JS).
DECK_JS = """
  (() => {
    const q = new URLSearchParams(location.search);
    const speaker = ["1", "true", "yes", "on"].includes((q.get("notes") || "").toLowerCase());
    if (speaker) document.body.classList.add("speaker");
    const chan = ("BroadcastChannel" in window) ? new BroadcastChannel("%CHANNEL%") : null;
    const $ = (id) => document.getElementById(id);
    const put = (id, text) => { const el = $(id); if (el) el.textContent = text == null ? "" : text; };
    let last = null, fromMain = false, shown = null, talkStart = null, slideStart = null;
    const clock = (ms) => {
      const s = Math.max(0, Math.floor(ms / 1000)), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
      const mm = h ? h + ":" + String(m).padStart(2, "0") : String(m);
      return mm + ":" + String(s % 60).padStart(2, "0");
    };
    const render = (p) => {
      const L = p.labels || {};
      put("sv-prev", L.prev_btn); put("sv-next", L.next_btn); put("sv-reset", L.reset);
      put("sv-talk-label", L.talk); put("sv-slide-label", L.slide); put("sv-next-label", L.next);
      const notes = $("sv-notes");
      if (!p.active) {
        put("sv-count", ""); put("sv-deck", ""); put("sv-title", L.waiting); put("sv-next-title", "");
        put("sv-warning", ""); if (notes) notes.innerHTML = ""; return;
      }
      put("sv-deck", p.deck_title);
      if (p.index < 0) {
        put("sv-count", "0 / " + p.count); put("sv-title", p.deck_title); put("sv-warning", "");
        if (notes) notes.textContent = L.not_started;
        put("sv-next-title", "");
      } else {
        put("sv-count", (p.index + 1) + " / " + p.count); put("sv-title", p.title); put("sv-warning", p.warning);
        if (notes) notes.innerHTML = p.notes_html || "";      // rendered on the server, raw HTML escaped
        put("sv-next-title", p.next_title || L.last);
      }
      if (p.index !== shown) {
        shown = p.index; slideStart = Date.now();
        if (talkStart === null && p.index >= 0) talkStart = Date.now();
      }
    };
    setInterval(() => {
      if (!speaker) return;
      const now = Date.now();
      put("sv-elapsed", clock(talkStart === null ? 0 : now - talkStart));
      put("sv-slide-time", clock(slideStart === null ? 0 : now - slideStart));
      put("sv-clock", new Date().toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
    }, 500);
    const step = (delta) => { if (chan) chan.postMessage({kind: "step", delta: delta}); };
    window.__deckPublish = (s) => {
      let p; try { p = JSON.parse(s || "{}"); } catch (e) { return; }
      if (speaker) { if (!fromMain) render(p); return; }
      document.body.classList.toggle("deck", !!p.active);
      last = s;
      if (chan) chan.postMessage({kind: "state", payload: s});
      const url = new URL(location.href);
      if (p.active && p.name && p.index >= 0) {
        for (const k of [...url.searchParams.keys()]) if (k !== "lang" && k !== "present") url.searchParams.delete(k);
        url.searchParams.set("deck", p.name); url.searchParams.set("slide", String(p.index + 1));
      } else if (!p.active || !p.name) { url.searchParams.delete("deck"); url.searchParams.delete("slide"); }
      history.replaceState(null, "", url);
    };
    if (chan) chan.onmessage = (ev) => {
      const m = ev.data || {};
      if (speaker) {
        if (m.kind === "state") { fromMain = true; try { render(JSON.parse(m.payload)); } catch (e) {} }
        return;
      }
      if (m.kind === "hello" && last) chan.postMessage({kind: "state", payload: last});
      if (m.kind === "step" && document.body.classList.contains("deck")) {
        const b = $(m.delta > 0 ? "deck-next" : "deck-prev"); if (b) b.click();
      }
    };
    if (speaker && chan) {
      const hello = () => { if (!fromMain) { chan.postMessage({kind: "hello"}); setTimeout(hello, 2000); } };
      hello();
    }
    document.addEventListener("click", (e) => {
      const id = e.target && e.target.id;
      if (id === "sv-prev") step(-1);
      if (id === "sv-next") step(1);
      if (id === "sv-reset") { talkStart = Date.now(); slideStart = Date.now(); }
    });
    window.__deckKey = (e) => {
      const back = e.key === "ArrowLeft" || e.key === "PageUp", fwd = e.key === "ArrowRight" || e.key === "PageDown";
      if (!back && !fwd) return false;
      if (speaker) { step(fwd ? 1 : -1); return true; }
      if (!document.body.classList.contains("deck")) return false;
      const b = $(fwd ? "deck-next" : "deck-prev");
      if (!b) return false;
      b.click(); return true;
    };
  })();
""".replace("%CHANNEL%", CHANNEL)

# After every move: the page's own state (body class, URL) and the speaker window.
PUBLISH_JS = "(s) => { if (window.__deckPublish) window.__deckPublish(s); return []; }"

# After the slide's view is drawn: the page says which slide it shows, drawn (data-slide-ready, for scripts
# that walk a deck and measure it).
READY_JS = """(s) => { let p = {}; try { p = JSON.parse(s || "{}"); } catch (e) {}
  document.body.dataset.slideReady = p.active && p.index >= 0 ? String(p.index + 1) : ""; return []; }"""

# The bar's "Speaker view": the same app with ?notes=1 in a second window (it finds this one on the channel).
SPEAKER_JS = """(s) => {
  let p = {}; try { p = JSON.parse(s || "{}"); } catch (e) {}
  const here = new URLSearchParams(location.search), q = new URLSearchParams();
  if (p.name) q.set("deck", p.name);
  q.set("notes", "1");
  const lang = here.get("lang") || p.lang; if (lang) q.set("lang", lang);
  window.open(location.pathname + "?" + q.toString(), "playground-speaker", "width=1100,height=760");
  return [];
}"""

# The speaker window's panel: every text in it comes from the payload, in the page's language.
SPEAKER_HTML = """<div id="sv">
  <div class="sv-top"><span id="sv-count"></span><span id="sv-deck"></span><span id="sv-clock"></span></div>
  <h1 id="sv-title"></h1>
  <p id="sv-warning"></p>
  <div id="sv-notes"></div>
  <div class="sv-next"><span id="sv-next-label"></span> <b id="sv-next-title"></b></div>
  <div class="sv-foot">
    <span class="sv-timer"><b id="sv-elapsed">0:00</b> <span id="sv-talk-label"></span> ·
      <b id="sv-slide-time">0:00</b> <span id="sv-slide-label"></span></span>
    <button id="sv-reset" type="button"></button>
    <button id="sv-prev" type="button"></button><button id="sv-next" type="button"></button>
  </div>
</div>"""

DECK_CSS = """
/* (body:... rules: Gradio also adds each rule prefixed with its container, which a body rule cannot match) */
body:not(.speaker) #speaker-view { display: none; }
body.speaker #header, body.speaker #tabs, body.speaker #deck-bar, body.speaker #deck-warning,
body.speaker #glossary, body.speaker footer, body.speaker #link-box { display: none !important; }
#sv { font-size: 24px; line-height: 1.45; color: #000; max-width: 1600px; margin: 0 auto; padding: 8px 16px; }
#sv .sv-top { display: flex; gap: 24px; font-size: 20px; color: #333; }
#sv .sv-top #sv-count { font-weight: 700; }
#sv .sv-top #sv-clock { margin-left: auto; font-variant-numeric: tabular-nums; }
#sv h1 { font-size: 40px; margin: 8px 0 4px; }
#sv #sv-warning { color: #8a4b00; font-size: 20px; margin: 0; }
#sv #sv-notes { font-size: 28px; min-height: 30vh; border-top: 2px solid #000; border-bottom: 2px solid #000;
  padding: 8px 0; overflow-wrap: anywhere; }
#sv #sv-notes code { font-size: 24px; }
#sv .sv-next { font-size: 24px; margin: 10px 0; color: #222; }
#sv .sv-foot { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; font-size: 24px; }
#sv .sv-timer { font-variant-numeric: tabular-nums; }
#sv .sv-foot #sv-reset { margin-left: auto; }
#sv button { font-size: 22px; padding: 8px 18px; border: 2px solid #000; border-radius: 8px; background: #fff;
  cursor: pointer; }
#sv #sv-next { background: #0033aa; color: #fff; border-color: #0033aa; }
/* The deck's bar sits in the header row; in a deck on a projector it takes the title's and the badge's room. */
#deck-bar { flex: 1 1 auto; flex-wrap: nowrap; align-items: center; gap: 6px; margin: 0; min-width: 0 !important;
  border: none; background: none; padding: 0; }
#deck-bar > * { min-width: 0 !important; }
#deck-bar button { flex: 0 0 auto !important; width: auto !important; white-space: nowrap; padding: 2px 10px; }
#deck-title { flex: 1 1 auto !important; overflow: hidden; min-width: 0; }
#deck-title .deck-head { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: var(--text-lg); }
#deck-warning p.deck-msg { margin: 0; color: #8a4b00; font-size: 16px; line-height: 1.3; }
#add-to-deck, #copy-link { flex: 0 0 auto !important; width: auto !important; white-space: nowrap; }
body.deck #title, body.deck #model-badge { display: none; }
body.presentation.deck #add-to-deck, body.presentation.deck #copy-link { display: none; }
body.presentation #deck-bar button { font-size: 18px; }
body.presentation #deck-title .deck-head { font-size: 24px; }
"""
