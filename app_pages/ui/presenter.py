"""Presenter mode: a deck of the app's own links (app_pages/ui/deck.py), played in lecture mode.

The sidebar's "Presenter mode" panel (:func:`panel`) picks a shipped deck (``decks/*.txt``) or the
teacher's own (typed, uploaded, or built with "Add this view as a slide"), checks it line by line
and plays it. While a deck plays, a bar at the top of every view (:func:`bar`) says "Slide n of N"
with the slide's title, Previous / Next / End buttons, and the keys a clicker sends
(``presenter_keys.js``: PageDown / PageUp, arrows outside the controls they move).

A slide reproduces its link exactly: going to a slide forgets what the session's earlier views held
(every URL key's widget, the copies carried across views, the model picked) and opens the slide's
view on its link, in lecture mode, like a fresh visit of the link; every value then goes through
the one validation layer (:func:`app_pages.ui.url.use`), which names on the page what it ignored.
The knobs of each slide stay live: the teacher moves them, the next slide starts from its own link.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages.ui.cache import shipped_names
from app_pages.ui.deck import MAX_DECK_CHARS, MAX_SLIDES, Deck, Slide, parse_deck, shipped_decks, slide_line
from app_pages.ui.lecture import hidden
from app_pages.ui.params import PARAMS, VIEWS
from app_pages.ui.text import md

_HERE = Path(__file__).resolve().parent
_keys = st.components.v2.component(
    "rnnviz_presenter_keys",
    js=(_HERE / "presenter_keys.js").read_text(encoding="utf-8"),
    isolate_styles=False,           # no markup; in the page's DOM like the charts
)

_DECK, _AT, _GO, _KEY_ID, _PROBLEMS = "_deck", "_deck_at", "_deck_go", "_deck_key_id", "_deck_problems"
#: The teacher's own deck text, kept while its text box is not drawn (another deck picked: Streamlit
#: drops the state of a widget not drawn in a run).
_OWN_TEXT = "_deck_own"
#: The deck picker's entry for the teacher's own deck.
OWN = "(your own deck)"
#: Session state a link's first visit does not have (besides every URL key's widget): the copies
#: that carry views' settings across navigation (url.py), the sidebar's record of a model picked
#: and of the model before a view's own (sidebar.py), its preset picker.
_LINK_STATE = ("_url_kept", "_ckpt_picked", "_ckpt_before_page_default", "_link_missing", "preset",
               "_last_preset")


def playing() -> Deck | None:
    """The deck being played (None: presenter mode is off)."""
    return st.session_state.get(_DECK)


def bar(url_path: str) -> None:
    """At the top of the page, before the sidebar and the view: go to a slide that was asked for
    (Play, a button, a key); while a deck plays, the slide bar. ``url_path``: the view shown."""
    deck = playing()
    if deck is None:
        _refused()
        return
    wanted = st.session_state.pop(_GO, None)
    if wanted is not None:
        _go(deck, wanted)
    at, n = st.session_state.get(_AT, 0), len(deck.slides)
    slide = deck.slides[at]
    away = "" if slide.view.url_path == url_path else f" (you are on {_title(url_path)})"
    # One row whose buttons keep their labels whole at any width; the title takes the rest and wraps.
    with st.container(key="nav-presenter", horizontal=True, vertical_alignment="center"):
        st.button("◀ Previous", key="presenter_prev", disabled=at == 0, on_click=_ask, args=(at - 1,),
                  help="The previous slide (PageUp, or ← outside the controls).")
        st.markdown(f"**Slide {at + 1} of {n}** · {md(slide.title)}{md(away)}", width="stretch")
        st.button("Next ▶", key="presenter_next", disabled=at == n - 1, on_click=_ask, args=(at + 1,),
                  help="The next slide (PageDown, or → outside the controls).")
        st.button("End", key="presenter_end", on_click=_end,
                  help="Leave presenter mode (the page stays as it is).")
        key = _keys(key="presenter_keys", data={"at": at, "n": n}, on_go_change=lambda: None,
                    width="content", height="content")
    _on_key(deck, getattr(key, "go", None))


def _title(url_path: str) -> str:
    """The title of the view at ``url_path``."""
    return next((v.title for v in VIEWS if v.url_path == url_path), url_path)


def _on_key(deck: Deck, event) -> None:
    """A key's trigger ({to, id}): go there, once per press."""
    if not isinstance(event, dict) or event.get("id") == st.session_state.get(_KEY_ID):
        return
    st.session_state[_KEY_ID] = event.get("id")
    to = event.get("to")
    if isinstance(to, int) and not isinstance(to, bool) and 0 <= to < len(deck.slides):
        _go(deck, to)


def _ask(to: int) -> None:
    st.session_state[_GO] = to


def _end() -> None:
    for key in (_DECK, _AT, _GO, _KEY_ID):
        st.session_state.pop(key, None)


def forget_link_state() -> None:
    """Forget what earlier views left in the session, so the next link opens as on a first visit
    (called before any widget of the run exists)."""
    for param in PARAMS.values():
        st.session_state.pop(param.widget, None)
    for key in _LINK_STATE:
        st.session_state.pop(key, None)


def _go(deck: Deck, to: int) -> None:
    """Open slide ``to`` (0-based) of ``deck``: its view, on its link, in lecture mode."""
    to = max(0, min(len(deck.slides) - 1, int(to)))
    slide: Slide = deck.slides[to]
    forget_link_state()
    st.session_state[_AT] = to
    st.switch_page(slide.view.page, query_params=slide.lecture_query())


# ---------------------------------------------------------------- the sidebar panel

def panel(url_path: str) -> None:
    """The sidebar's "Presenter mode" panel: pick or write a deck, add the view shown, play."""
    decks = shipped_decks()
    problems = st.session_state.get(_PROBLEMS)
    with st.sidebar, st.expander("Presenter mode", expanded=bool(problems and problems["warnings"])):
        pick = st.selectbox("Deck", [*decks, OWN], key="deck_pick",
                            help="A lecture: one link of this app a line (docs/LECTURE.md).")
        if pick == OWN:
            with hidden("upload", "deck"):
                st.file_uploader("Open a deck file (.txt)", type=["txt"], key="deck_upload",
                                 on_change=_uploaded)
            st.session_state.setdefault("deck_text", st.session_state.get(_OWN_TEXT, ""))
            st.text_area("Your deck: one link a line, then its title", key="deck_text", height=160,
                         placeholder="lesson?lesson.tab=…   The toy network", on_change=_keep_text)
        st.button("Add this view as a slide", key="deck_add", on_click=_add, args=(url_path,),
                  help="Adds the page as it is now (its link) to your own deck.")
        st.number_input("Start at slide", 1, MAX_SLIDES, key="deck_start",
                        help="After a reload of the page: go on where the lecture was.")
        st.button("▶ Play the deck", key="deck_play", type="primary", on_click=_play, args=(decks,))
        if pick == OWN and st.session_state.get(_OWN_TEXT, "").strip():
            with hidden("export", "deck"):
                st.download_button("Download your deck", data=st.session_state[_OWN_TEXT],
                                   file_name="rnnviz-deck.txt", mime="text/plain", key="deck_download")
        _show_problems(problems)


def _refused() -> None:
    """Above the view, once (the run right after Play): why the deck was not played, line by line
    (the sidebar is too narrow for a list of links)."""
    problems = st.session_state.get(_PROBLEMS) or {}
    if problems.get("errors"):
        st.error("This deck cannot be played:\n\n" + "\n".join(f"- {e}" for e in problems["errors"]))
        _show_problems(problems)
        st.session_state.pop(_PROBLEMS)


def _show_problems(problems: dict | None) -> None:
    """In the panel: the deck's values that its slides will replace by the default."""
    if not problems:
        return
    if problems["warnings"]:
        st.warning("Ignored from the deck's links (their slides use the default instead):\n\n"
                   + "\n".join(f"- {w}" for w in problems["warnings"]))


def _deck_text(decks: dict[str, Path]) -> str:
    pick = st.session_state.get("deck_pick")
    if pick in decks:
        return decks[pick].read_text(encoding="utf-8")
    _keep_text()          # the box's newest text (its own callback may run after Play's)
    return st.session_state.get(_OWN_TEXT, "")


def _keep_text() -> None:
    if "deck_text" in st.session_state:
        st.session_state[_OWN_TEXT] = st.session_state["deck_text"]


def _set_text(text: str) -> None:
    st.session_state["deck_text"] = st.session_state[_OWN_TEXT] = text


def _play(decks: dict[str, Path]) -> None:
    """Check the deck; play it from its first slide, or say which lines are wrong."""
    deck = parse_deck(_deck_text(decks), limits={"ckpts": shipped_names()})
    st.session_state[_PROBLEMS] = {"errors": deck.errors, "warnings": deck.warnings}
    if deck.playable:
        st.session_state[_DECK] = deck
        st.session_state[_GO] = min(int(st.session_state.get("deck_start", 1)), len(deck.slides)) - 1


def _add(url_path: str) -> None:
    """Append the view shown, as its link stands, to the teacher's own deck."""
    view = next(v for v in VIEWS if v.url_path == url_path)
    query = [(k, v) for k in st.query_params for v in st.query_params.get_all(k)]
    text = st.session_state.get(_OWN_TEXT, "")
    if not text.strip():
        text = "# My lecture: one link a line, then its title (docs/LECTURE.md)\n"
    _set_text(text.rstrip("\n") + "\n" + slide_line(view, query, view.title) + "\n")
    st.session_state["deck_pick"] = OWN


def _uploaded() -> None:
    """A deck file opened: its text becomes the teacher's deck (not played until Play)."""
    upload = st.session_state.get("deck_upload")
    if upload is None:
        return
    data = upload.getvalue()
    if len(data) > 4 * MAX_DECK_CHARS:
        st.session_state[_PROBLEMS] = {"errors": [f"{md(upload.name)}: {len(data):,} bytes; a deck is a few "
                                                  "dozen lines"], "warnings": []}
        return
    try:
        _set_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        st.session_state[_PROBLEMS] = {"errors": [f"{md(upload.name)}: not UTF-8 text"], "warnings": []}
