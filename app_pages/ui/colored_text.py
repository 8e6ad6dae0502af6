"""Coloured text that updates in place: one keyed Streamlit Components v2 element per text block.

``st.html`` of ``rnnviz.plots.text.colored_text_html`` re-creates ~1,000 ``<span>`` elements per
update, parsed and sanitised by the page (about 0.12 Chromium CPU-s per update on Hidden states at
1,000 characters). :func:`colored_text` sends ``colored_text_data`` instead, and
``colored_text.js`` (beside this file) keeps the spans and only sets their text, colour and tooltip.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import streamlit as st

from rnnviz.plots import text as tplots

_HERE = Path(__file__).resolve().parent

_text = st.components.v2.component(
    "rnnviz_colored_text",
    js=(_HERE / "colored_text.js").read_text(encoding="utf-8"),
    # In the page's DOM (no shadow root): lecture mode's CSS enlarges `.rnnviz-text`, and the text
    # is part of the page's text (find in page, the browser tests).
    isolate_styles=False,
)


def colored_text(chars: Sequence[str], values: Sequence[float | None], *, key: str, vmin: float,
                 vmax: float, scale: str = tplots.DIVERGING, tooltips: Sequence[str] | None = None,
                 marked: Sequence[int] = (), font_size: int = 15, caption: str = "") -> None:
    """Show ``chars`` coloured by ``values`` (arguments as rnnviz.plots.text.colored_text_data),
    kept mounted under ``key`` and updated in place on later runs."""
    kwargs = dict(vmin=vmin, vmax=vmax, scale=scale, tooltips=tooltips, marked=marked,
                  font_size=font_size, caption=caption)
    data = tplots.colored_text_data(chars, values, **kwargs)
    data["styles"] = {"text": tplots.TEXT_STYLE, "caption": tplots.CAPTION_STYLE}
    data["sig"] = hashlib.sha256(json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")
                                 ).hexdigest()[:16]
    _text(key=key, data=data, width="stretch", height="content")
