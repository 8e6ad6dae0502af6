"""A Streamlit session without a browser: Streamlit's own websocket protocol, nothing rendered.

The load test's browser sessions (tools/load_session.py) put 20 Chromium renderers on the same
two cores as the app, so their CPU, not the app's, sets the latency there (docs/RELIABILITY.md §7).
A student's browser runs on the student's laptop. :class:`ProtocolSession` stands in for such a
browser on the server's side of the wire: it speaks the protocol Streamlit's frontend speaks
(binary ``BackMsg`` / ``ForwardMsg`` protobufs on ``/_stcore/stream``, the classes Streamlit
ships in ``streamlit.proto``), asks for script runs exactly as a browser does (a widget's new
value, another page of ``st.navigation``), and reads what comes back: the elements of each run,
its exceptions, and the moment the run is over. It draws nothing, so it costs the box almost no
CPU, and the server's latency can be measured alone.

What it does not do: run the page's JavaScript (the in-place charts' Plotly.react, the coloured
text), upload files, or answer a component's messages. The browser load test covers those.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

#: ScriptFinished values (ForwardMsg.script_finished) that end a run.
FINISHED_OK = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_SUCCESSFULLY")


@dataclass
class Run:
    """What one script run sent: ``elements`` (element type, its proto) in arrival order,
    ``exceptions`` (their messages), ``status`` (the ScriptFinished value; None if the run never
    finished), ``seconds`` from the request to the run's end."""

    elements: list[tuple[str, object]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    status: int | None = None
    seconds: float = 0.0

    def widget_id(self, kind: str, label: str | None = None) -> str | None:
        """The id of the first element of type ``kind`` (e.g. "text_area"), with ``label`` if given."""
        for k, el in self.elements:
            if k == kind and (label is None or getattr(el, "label", None) == label):
                return el.id
        return None

    def payloads(self) -> list[bytes]:
        """The data of every Components v2 element of the run (the in-place charts and text)."""
        return [bytes(el.bytes) if el.WhichOneof("data") == "bytes" else b""
                for k, el in self.elements if k == "bidi_component"]


class ProtocolSession:
    """One Streamlit session over its websocket. ``url``: the app (or a load balancer in front);
    ``cookies``: sent with the websocket's upgrade request (e.g. a balancer's affinity cookie)."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None, timeout: float = 60.0):
        parts = urlsplit(url.rstrip("/"))
        scheme = "wss" if parts.scheme == "https" else "ws"
        self.ws_url = urlunsplit((scheme, parts.netloc, parts.path + "/_stcore/stream", "", ""))
        self.cookies = dict(cookies or {})
        self.timeout = timeout
        self.ws = None
        self.pages: dict[str, str] = {}       # url path ("" for the default page) -> page_script_hash
        self.page_hash = ""
        self.widgets: dict[str, object] = {}  # widget id -> WidgetState last sent

    async def connect(self) -> None:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else None
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"],
                                           additional_headers=headers, max_size=None,
                                           open_timeout=self.timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def run(self, query: str = "", page: str | None = None, widgets: dict | None = None) -> Run:
        """Ask for a script run as the browser does, and read until it is over.

        query: the page URL's query string (the first run reads URL state from it); page: the url
        path of a page of the app's navigation (None: the page shown); widgets: widget id -> new
        value (str, bool, int or float), sent with every value set before."""
        for wid, value in (widgets or {}).items():
            self.widgets[wid] = _widget_state(wid, value)
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = query
        if page is not None:
            self.page_hash = self.pages.get(page.strip("/"), "")
            cs.page_name = page.strip("/")
        cs.page_script_hash = self.page_hash
        cs.widget_states.widgets.extend(self.widgets.values())
        cs.context_info.timezone = "UTC"
        cs.context_info.locale = "en-US"
        t0 = time.monotonic()
        await self.ws.send(msg.SerializeToString())
        run = Run()
        await asyncio.wait_for(self._read_run(run), self.timeout)
        run.seconds = time.monotonic() - t0
        return run

    async def _read_run(self, run: Run) -> None:
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await self.ws.recv())
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self._learn_pages(fwd.new_session.app_pages, fwd.new_session.page_script_hash)
            elif kind == "navigation":
                self._learn_pages(fwd.navigation.app_pages, fwd.navigation.page_script_hash)
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                t = el.WhichOneof("type")
                run.elements.append((t, getattr(el, t)))
                if t == "exception":
                    run.exceptions.append(f"{el.exception.type}: {el.exception.message}"[:300])
            elif kind == "script_finished":
                run.status = fwd.script_finished
                if fwd.script_finished != ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN"):
                    return

    def _learn_pages(self, pages, current: str) -> None:
        for p in pages:
            self.pages[p.url_pathname.strip("/")] = p.page_script_hash
            if p.is_default:
                self.pages[""] = p.page_script_hash
        if current:
            self.page_hash = current


def _widget_state(wid: str, value) -> object:
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    ws = WidgetState(id=wid)
    if isinstance(value, bool):
        ws.bool_value = value
    elif isinstance(value, int):
        ws.int_value = value
    elif isinstance(value, float):
        ws.double_value = value
    else:
        ws.string_value = str(value)
    return ws
