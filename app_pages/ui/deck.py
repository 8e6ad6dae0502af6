"""A lecture deck: an ordered list of the app's own links, one slide a line (docs/LECTURE.md).

A deck is a small text file a teacher writes by hand (or builds with "Add this view as a slide")::

    # comments start with '#'; blank lines are skipped
    lesson?lesson.tab=...&ckpt=timemachine-rnn   The toy network and its zeros
    http://localhost:8501/gradients?gr.len=200   The gradient through a long chain

Each line is a link of this app — whole, or its path and query — and, after white space, an optional
title (a link holds no spaces). :func:`parse_deck` checks every line against the registry of views
(:data:`app_pages.ui.params.VIEWS`) and every value through the one validation layer of links
(:func:`app_pages.ui.url.from_link`, the keys of :data:`app_pages.ui.params.PARAMS`): a line that is
not a link, names an unknown view or a key the view does not read is an error (the deck is not
played); a value the layer refuses is named the way the page names it ("gr.scale=9 (must be a
number 0.05–5)") and, as on the page, the slide opens with the default. A value whose range depends
on the model or the text (a step, a checkpoint of a session's uploads) is checked when its slide
opens, by the same layer, and named there.

No Streamlit calls here: the presenter (:mod:`app_pages.ui.presenter`) plays a parsed deck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from app_pages.ui.params import PARAMS, VIEWS, View
from app_pages.ui.text import md
from app_pages.ui.url import Limits, from_link

#: The shipped decks: ``decks/<name>.txt`` at the repository root.
DECKS_DIR = Path(__file__).resolve().parents[2] / "decks"
#: A deck file longer than this is refused unread (a lecture is a few dozen lines).
MAX_DECK_CHARS = 200_000
MAX_SLIDES = 200
MAX_TITLE = 120
#: The URL keys every view reads (the sidebar's): the keys without a view prefix.
SIDEBAR_KEYS = frozenset(k for k in PARAMS if "." not in k)


@dataclass(frozen=True)
class Slide:
    """One slide: the deck line it came from (1-based), its view, its link's query (key, value)
    pairs in the link's order, and its title (the view's title when the line gives none)."""

    line: int
    view: View
    query: tuple[tuple[str, str], ...]
    title: str

    def lecture_query(self) -> list[tuple[str, str]]:
        """The query the slide opens with: its link's, in lecture mode (a deck plays projected)."""
        return [(k, v) for k, v in self.query if k != "lecture"] + [("lecture", "1")]


@dataclass
class Deck:
    """A parsed deck: its slides; ``errors`` (the deck cannot be played) and ``warnings`` (values
    that will be replaced by their defaults), each a message that starts with "line N:", ready for
    Markdown (what the deck's text says is escaped, as the page's "Ignored from the link" line)."""

    slides: list[Slide] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def playable(self) -> bool:
        return bool(self.slides) and not self.errors


_BY_PATH = {v.url_path: v for v in VIEWS}
_KNOWN_VIEWS = ", ".join(f"{v.url_path or '/'} ({v.title})" for v in VIEWS)


def _view_of(path: str) -> View | None:
    """The view of a link's path: its last segment (a server may sit under a base path)."""
    segment = path.rstrip("/").rsplit("/", 1)[-1] if path.strip("/") else ""
    return _BY_PATH.get(segment)


def parse_line(number: int, line: str, limits: Limits | None = None) -> tuple[Slide | None, list[str], list[str]]:
    """(slide or None, errors, warnings) of one deck line (``number``: its 1-based line number)."""
    link, *rest = line.split(None, 1)
    title = " ".join(rest[0].split())[:MAX_TITLE] if rest else ""
    parts = urlsplit(link)
    where = f"line {number}"
    if parts.scheme not in ("", "http", "https") or (parts.scheme and not parts.netloc) or parts.fragment:
        return None, [f"{where}: not a link of this app: {md(repr(link[:80]))}"], []
    view = _view_of(parts.path)
    if view is None:
        return None, [f"{where}: unknown view {md(repr(parts.path[:60]))}; the views are {md(_KNOWN_VIEWS)}"], []
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        return None, [f"{where}: the link's query {md(repr(parts.query[:60]))} is not key=value pairs"], []
    errors, warnings = [], []
    for key in dict.fromkeys(k for k, _ in pairs):
        if key not in PARAMS:
            errors.append(f"{where}: unknown key {md(repr(key[:40]))} (not a setting of any view)")
        elif key not in SIDEBAR_KEYS and not (view.prefix and key.startswith(view.prefix)):
            errors.append(f"{where}: {key} is not a setting of {view.title}")
        else:
            complaint = _check(key, [v for k, v in pairs if k == key], limits or {})
            if complaint:
                warnings.append(f"{where}: {complaint}")
    if errors:
        return None, errors, warnings
    return Slide(number, view, tuple(pairs), title or view.title), [], warnings


def _check(key: str, values: list[str], limits: Limits) -> str | None:
    """The validation layer's complaint about ``key``'s values, or None (also when the key's range
    needs limits not given here: its slide's page checks it)."""
    try:
        _, _, complaint = from_link(PARAMS[key], values, limits)
    except (KeyError, TypeError, IndexError):
        return None
    return complaint


def parse_deck(text: str, limits: Limits | None = None) -> Deck:
    """The deck in ``text``; ``limits``: what the validation layer may check lines against now
    (``{"ckpts": …}``: the checkpoints this server has)."""
    deck = Deck()
    if len(text) > MAX_DECK_CHARS:
        deck.errors.append(f"the deck has {len(text):,} characters; at most {MAX_DECK_CHARS:,} are read")
        return deck
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        slide, errors, warnings = parse_line(number, line, limits)
        deck.errors += errors
        deck.warnings += warnings
        if slide is not None:
            deck.slides.append(slide)
    if len(deck.slides) > MAX_SLIDES:
        deck.errors.append(f"the deck has {len(deck.slides)} slides; at most {MAX_SLIDES}")
    if not deck.slides and not deck.errors:
        deck.errors.append("the deck has no slides: one link a line (lines starting with # are comments)")
    return deck


def shipped_decks() -> dict[str, Path]:
    """The decks that ship with the app: name → file (``decks/*.txt``), sorted by name."""
    if not DECKS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(DECKS_DIR.glob("*.txt"))}


def slide_line(view: View, query: list[tuple[str, str]], title: str = "") -> str:
    """The deck line of a view opened with ``query`` (lecture mode left out: a deck plays in it)."""
    query = [(k, v) for k, v in query if k != "lecture"]
    text = f"{view.url_path or '/'}" + (f"?{urlencode(query)}" if query else "")
    return text + (f"   {' '.join(title.split())[:MAX_TITLE]}" if title.strip() else "")
