"""Lecture mode: presentation, not amputation.

With lecture mode on, the page is projected: type and every control are enlarged, and only what a
class does not need to see is hidden — explanations (:func:`explanation`), uploads and exports
(containers keyed ``upload-…`` / ``export-…``, see :func:`hidden`). Every control a
demonstration moves (sliders, pickers, the what-if knobs: ``charts.controls`` containers) stays.

The hidden kinds are one list, :data:`HIDDEN_KINDS`: the CSS below is built from it and the tests
check against it that no knob sits inside a hidden container.
"""

from __future__ import annotations

import streamlit as st

#: Container-key prefixes hidden in lecture mode (Streamlit gives a keyed container the class
#: ``st-key-<key>``).
HIDDEN_KINDS = ("explain", "upload", "export")


def hidden(kind: str, name: str):
    """A container hidden in lecture mode: ``kind`` is one of :data:`HIDDEN_KINDS`."""
    if kind not in HIDDEN_KINDS:
        raise ValueError(f"kind must be one of {HIDDEN_KINDS}")
    return st.container(key=f"{kind}-{name}")


def explanation(name: str):
    """A container for prose that explains a view (hidden in lecture mode, where the teacher talks)."""
    return hidden("explain", name)


def is_hidden_key(key: str | None) -> bool:
    """Whether a container with this key is hidden in lecture mode."""
    return bool(key) and any(key.startswith(f"{kind}-") for kind in HIDDEN_KINDS)


#: The root font size in lecture mode: 22 px on a 1080-line projector, in proportion to the window's
#: height below that (a 720-line one gets 16 px: the same share of the screen as 22 px of 1080, so
#: the knobs and the first chart still fit), never under 16 px.
ROOT_FONT = "clamp(16px, 2.04vh, 22px)"

_HIDE = ", ".join(f'[class*="st-key-{kind}-"]' for kind in HIDDEN_KINDS)

#: Larger type for a projector, on public hooks only: Streamlit sizes its text, widget labels, select
#: and number boxes, buttons, slider thumbs and metrics in rem, so one root font size enlarges every
#: knob and all text together, in proportion (no per-element rules on Streamlit's test ids, which
#: once made metric values as small as their labels and slider values overlap their thumbs); the
#: ``st-key-…`` classes of keyed containers hide; plain tags and our own ``.rnnviz-text`` follow.
LECTURE_CSS = f"""
<style>
html {{ font-size: {ROOT_FONT}; }}
{_HIDE} {{ display: none !important; }}
h1 {{ font-size: 2.4rem !important; }}
.rnnviz-text {{ font-size: 22px !important; }}
</style>
"""
