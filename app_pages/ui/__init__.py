"""The thin Streamlit layer shared by every view, one module per concern.

- ``startup``: once-per-process work (gc freeze, warm-up thread, run log).
- ``cache``: the shared caches (shipped / uploaded models, the byte-bounded trace store).
- ``url``: URL state (seeding widgets from ``st.query_params`` and writing them back).
- ``text``: the sidebar text's defaults and limits, Markdown escaping, the text notices.
- ``charts``: chart decoration (``show_chart``), view control containers, the window slider.
- ``context``: the :class:`Context` every view reads.
- ``sidebar``: the sidebar (lecture mode, checkpoint, upload, text, model card, export).

No model math lives here: every number comes from ``rnnviz``; these modules only wire widgets,
caching and the URL together. Views import the names they use from the modules directly.
"""
