"""Browser teleop device: a page served by the device, driven over a websocket.

`WebDevice` runs a websockets (asyncio API) server in a background thread, started by
``open()`` and stopped by ``close()``. One port serves everything:

==================  ==================================================================
``GET /``           the teleop page (``static/teleop.html``: joystick, sliders, buttons)
``GET /healthz``    ``{"status": "ok", "clients": n, "controller": bool}`` (JSON)
``/ws``             the websocket
other paths         404
==================  ==================================================================

The page (robot base frame, x forward, y left, z up): joystick up = +x, left = +y (full
deflection = ``max_linear_speed``); vertical slider up = +z; horizontal slider left = +yaw
(counter-clockwise seen from above). Drags spring back to zero on release; the gripper
button toggles open/closed, clutch is held, intervene toggles, E-STOP latches (Esc too).

`poll` returns the controller's latest input as a ``twist`` prompt stamped ``now``;
``fresh`` is True only when a new input message arrived since the previous poll (feed
``deadman.update(now, p if dev.fresh else None)``). Before any input, and after the
controller leaves, it returns a zero prompt.

It binds ``127.0.0.1`` unless ``host`` says otherwise (``"0.0.0.0"`` to reach it from a
phone on the LAN — explicit, and logged). On a loopback bind, requests whose ``Host`` header
is not a loopback name are refused (403, DNS rebinding); a websocket handshake whose
``Origin`` header is not the page's own origin is refused (403: another web site open in
the operator's browser must not drive the robot). Clients without an ``Origin`` header
(scripts) are allowed.

Roles. The first client to connect is the **controller**; later ones are **viewers**
(view-only: they see the state, their commands are rejected with reason ``view-only``). One
exception: **any station may stop the robot** — a viewer's E-STOP latches the e-stop like the
controller's (stopping is always allowed; driving stays with the controller).
When the controller disconnects, the oldest remaining client is promoted and told so with
a new ``hello``. A controller disconnect drops its input at once: `poll` then gives a zero
prompt (keeping the gripper command and the e-stop latch) with ``fresh = False``, so a
`Deadman` downstream trips.

Protocol (JSON text frames, one object each)
--------------------------------------------

client → server::

    {"type": "input", "seq": 12, "twist": [vx, vy, vz, wx, wy, wz],
     "gripper": 1.0, "buttons": {"clutch": false, "intervene": false, "estop": false}}
    {"type": "estop"}             (any client: latch the e-stop)
    {"type": "reset_estop"}
    {"type": "ping"}              (optional "t": number, echoed in the pong)

* ``twist``: 6 numbers, normalised to [-1, 1], in the robot base frame (x forward, y left,
  z up; angular about those axes, + counter-clockwise); scaled by the device's
  ``max_linear_speed`` (first 3) and ``max_angular_speed`` (last 3) into the `Prompt`.
* ``gripper``: number in [-1 closed, +1 open].
* ``buttons``: exactly the three booleans.
* ``seq``: integer in [0, 2^53), strictly increasing on one connection.
* No other keys. Only the controller may send ``input`` and ``reset_estop``, except that
  a viewer's ``input`` with ``buttons.estop = true`` is taken as its E-STOP: it latches the
  e-stop and nothing else of it is used (its twist, gripper, other buttons and ``seq`` are
  validated, then ignored). A viewer's other ``input`` (estop false) is rejected
  (``view-only``).

server → client::

    {"type": "hello", "protocol": 1, "role": "controller" | "viewer", "max_linear_speed": ..,
     "max_angular_speed": .., "max_message": 4096, "input_rate_hz": 20.0,
     "gripper": current gripper command, "estop": latched}
    {"type": "state", "role": .., "clients": n, "estop": bool, "seq": last accepted seq | null,
     "age": s since the last accepted input | null, "prompt": Prompt.to_dict()}   (~10 Hz)
    {"type": "error", "reason": "<reason>", "detail": "<words>"}
    {"type": "pong", "t": ..}

A ``hello`` is sent on connect and on promotion; ``state`` to every client at
``state_rate`` Hz, and to the sender right after a ``reset_estop`` or an e-stop that did not
come from the controller's ``input`` (an ``estop`` message, a viewer's estop ``input``). A
new controller should start from the ``hello``'s ``gripper`` (the page does), so a handover
or a page reload does not move the gripper. The page sends its full input at 20 Hz while it
controls (a heartbeat) and on every change.

Rejected messages get an ``error`` reply, are counted in ``rejected[reason]`` and never
change the prompt. Reasons: ``oversize`` (over ``max_message`` bytes; frames over
``max_frame`` bytes close the connection with code 1009 and are counted too),
``binary``, ``malformed-json``, ``non-finite`` (NaN/Infinity literals, which Python's json
would accept, or overflowing numbers like 1e999), ``not-an-object``, ``unknown-type``,
``bad-field`` (missing/unknown keys, wrong types or sizes), ``out-of-range``,
``stale-seq``, ``view-only``, ``estop-held``. Refused handshakes count as ``origin`` or
``bad-host``.

E-stop. Any connected client latches the e-stop, with an input with
``buttons.estop = true`` (the controller's, or a viewer's) or a ``{"type": "estop"}``
message (any client; the page's viewers send this one). While latched every prompt has
``estop = True`` and a zero twist. **Only the controller resets it**: it (a) sends an input
with ``estop = false`` (the button released) and then (b) sends ``{"type":
"reset_estop"}``; the reset drops the input from before it, so prompts stay zero until the
next input. A ``reset_estop`` while the controller's last input still has ``estop = true``,
after its own ``estop`` message with no input since, or before it sent any input, is
rejected (``estop-held``); from a viewer it is rejected (``view-only``), so a viewer can
stop the robot but never restart it, and a viewer's stop needs the controller's reset. The
latch survives disconnects and handovers. `reset_estop()` clears it from Python (the next
e-stop latches again). The safety filter has its own latch and reset; this one only shapes
the prompt.
"""
from __future__ import annotations

import asyncio
import importlib.resources
import ipaddress
import json
import logging
import math
import threading
import time
from urllib.parse import urlsplit

import numpy as np

from .base import NOT_FOUND, NOT_INSTALLED, Device, DeviceUnavailable, register
from .schema import Prompt

log = logging.getLogger(__name__)

PROTOCOL = 1
# websockets logs every connection at INFO: keep its logger at WARNING unless configured.
_SERVER_LOG = logging.getLogger(__name__ + ".server")
if _SERVER_LOG.level == logging.NOTSET:
    _SERVER_LOG.setLevel(logging.WARNING)
BIND_FAILED = "bind_failed"  # status: the server could not listen on host:port
CONTROLLER, VIEWER = "controller", "viewer"
BUTTONS = ("clutch", "intervene", "estop")
INPUT_KEYS = frozenset({"type", "seq", "twist", "gripper", "buttons"})
MAX_SEQ = 2**53
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class _Reject(Exception):
    """A rejected client message: ``reason`` (counted) and ``detail`` (words)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _no_constants(name: str):
    raise _Reject("non-finite", f"{name} is not allowed")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(x, name: str) -> float:
    if not _is_number(x):
        raise _Reject("bad-field", f"{name}: expected a number, got {type(x).__name__}")
    try:
        v = float(x)
    except OverflowError:  # an integer too large for a float
        v = math.inf
    if not math.isfinite(v):
        raise _Reject("non-finite", f"{name}: {v}")
    if not -1.0 <= v <= 1.0:
        raise _Reject("out-of-range", f"{name}: {v} outside [-1, 1]")
    return v


def parse_input(msg: dict) -> tuple[int, np.ndarray, float, dict[str, bool]]:
    """Validate an ``input`` message; returns ``(seq, twist_normalised, gripper, buttons)``
    or raises `_Reject`."""
    extra = set(msg) - INPUT_KEYS
    if extra:
        raise _Reject("bad-field", f"unknown key(s) {sorted(extra)}")
    missing = INPUT_KEYS - set(msg)
    if missing:
        raise _Reject("bad-field", f"missing key(s) {sorted(missing)}")
    seq = msg["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < MAX_SEQ:
        raise _Reject("bad-field", f"seq: expected an integer in [0, 2^53), got {seq!r:.40}")
    twist = msg["twist"]
    if not isinstance(twist, list) or len(twist) != 6:
        raise _Reject("bad-field", "twist: expected a list of 6 numbers")
    tw = np.array([_number(v, f"twist[{i}]") for i, v in enumerate(twist)])
    gripper = _number(msg["gripper"], "gripper")
    buttons = msg["buttons"]
    if not isinstance(buttons, dict) or set(buttons) != set(BUTTONS):
        raise _Reject("bad-field", f"buttons: expected an object with exactly {list(BUTTONS)}")
    for k in BUTTONS:
        if not isinstance(buttons[k], bool):
            raise _Reject("bad-field", f"buttons.{k}: expected true or false")
    return seq, tw, gripper, {k: buttons[k] for k in BUTTONS}


def load_page() -> str:
    """The teleop page, from the package (``robot_ctrl/teleop/static/teleop.html``)."""
    return importlib.resources.files(__package__).joinpath("static", "teleop.html").read_text(
        encoding="utf-8")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """Host name of a ``Host`` header value (``name[:port]``, ``[v6]:port``)."""
    try:
        return (urlsplit("//" + host_header).hostname or "").lower()
    except ValueError:
        return ""


@register("web")
class WebDevice(Device):
    """Teleop from a browser page (phone or desktop) served by the device itself.

    Args:
        host: interface to bind; default ``127.0.0.1`` (``"localhost"`` means the same).
            Anything else must be asked for, e.g. ``"0.0.0.0"`` for the LAN (no TLS, no
            authentication: only on a trusted network).
        port: TCP port; 0 picks a free one (see ``port`` / ``url`` after ``open()``).
        state_rate: Hz of the ``state`` broadcast (default 10).
        max_message: largest accepted message in bytes (default 4096); larger ones get an
            ``oversize`` error reply.
        max_frame: frames over this many bytes close the connection (code 1009).
        ping_interval, ping_timeout: websocket keepalive (s); a silent client is dropped
            after about their sum, which frees the controller role.
        start_timeout: s to wait for the server to listen in ``open()``.
        **kwargs: `Device` scales (``max_linear_speed``, ``max_angular_speed``) and
            ``reconnect_period`` (restart the server after it failed).

    Attributes (after ``open()``): ``port``, ``url`` (the page), ``ws_url``, ``address``
    (the bound socket address), ``clients``, ``controller_connected``, ``estop_latched``,
    ``rejected`` (reason → count).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, state_rate: float = 10.0,
                 max_message: int = 4096, max_frame: int = 65536, ping_interval: float = 2.0,
                 ping_timeout: float = 4.0, start_timeout: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(host, str) or not host:
            raise ValueError(f"host: expected an interface name or address, got {host!r}")
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise ValueError(f"port: expected an integer in [0, 65535], got {port!r}")
        if not (np.isfinite(state_rate) and state_rate > 0):
            raise ValueError(f"state_rate: must be > 0 Hz, got {state_rate!r}")
        if not (isinstance(max_message, int) and 64 <= max_message <= max_frame):
            raise ValueError(f"max_message: must be an integer in [64, max_frame={max_frame}], "
                             f"got {max_message!r}")
        for key, v in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout),
                       ("start_timeout", start_timeout)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{key}: must be > 0 s, got {v!r}")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.state_rate = float(state_rate)
        self.max_message, self.max_frame = max_message, int(max_frame)
        self.ping_interval, self.ping_timeout = float(ping_interval), float(ping_timeout)
        self.start_timeout = float(start_timeout)
        self.address: tuple | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._rejected: dict[str, int] = {}
        self._log_times: dict[str, float] = {}
        self._estop = False
        self._gripper = 1.0
        self._reset_state()

    def _reset_state(self) -> None:
        self._conns: list = []          # connected clients, oldest first
        self._controller = None         # the controlling connection, or None
        self._input = None              # (twist_norm, gripper, buttons) of the controller
        self._new = False               # an input arrived since the last poll
        self._seq: dict = {}            # connection -> last accepted seq
        self._last_estop: dict = {}     # connection -> estop flag of its last accepted input
        self._t_input: float | None = None
        self._last_seq: int | None = None

    # -- public -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._url_host()}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host()}:{self.port}/ws"

    @property
    def rejected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._rejected)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._conns)

    @property
    def controller_connected(self) -> bool:
        with self._lock:
            return self._controller is not None

    @property
    def estop_latched(self) -> bool:
        with self._lock:
            return self._estop

    def reset_estop(self) -> None:
        """Clear the e-stop latch from Python (a held browser e-stop latches it again)."""
        with self._lock:
            self._clear_estop()

    def _clear_estop(self) -> None:
        """(Lock held.) Clear the latch. The input from before the reset is dropped, so the
        reset itself never starts motion: zero prompts until the next input."""
        self._estop = False
        self._input, self._new = None, False

    # -- Device ------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            import websockets.asyncio.server  # noqa: F401
        except ImportError:
            raise DeviceUnavailable(NOT_INSTALLED, "web: the 'websockets' package (>= 13) is "
                                    "not installed: pip install websockets") from None
        try:
            self._page = load_page()
        except (FileNotFoundError, ModuleNotFoundError) as e:
            raise DeviceUnavailable(NOT_FOUND, f"web: teleop page missing from the package "
                                    f"({e}); is static/*.html in package_data?") from None
        if not _is_loopback(self.host):
            log.warning("web: binding %s: the teleop page is reachable from the network "
                        "(no TLS, no authentication)", self.host)
        with self._lock:
            self._reset_state()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="teleop-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            self._close()
            raise DeviceUnavailable(BIND_FAILED, f"web: server did not start listening on "
                                    f"{self.host}:{self.port} within {self.start_timeout} s")
        if self._start_error is not None:
            self._thread.join(self.start_timeout)
            self._thread = None
            raise DeviceUnavailable(BIND_FAILED, f"web: cannot listen on {self.host}:"
                                    f"{self.port}: {self._start_error}")
        log.info("web teleop: %s", self.url)

    def _poll(self, now: float) -> Prompt:
        if self._thread is None or not self._thread.is_alive():
            raise OSError("the web server thread stopped")
        with self._lock:
            inp, new, latched, gripper = self._input, self._new, self._estop, self._gripper
            self._new = False
        self.fresh = new
        if inp is None:
            return Prompt.zero(now, gripper=gripper, estop=latched)
        return self._prompt(now, inp, latched)

    def _close(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop already ended
                pass
        thread.join(self.start_timeout)
        if thread.is_alive():
            log.warning("web: server thread did not stop within %.1f s", self.start_timeout)
        self._thread = self._loop = self._stop = None
        with self._lock:
            self._reset_state()

    # -- prompt ------------------------------------------------------------------------

    def _prompt(self, stamp: float, inp, latched: bool) -> Prompt:
        twist_n, gripper, buttons = inp
        twist = np.zeros(6) if latched else twist_n * self.scale
        return Prompt(stamp=stamp, mode="twist", twist=twist, gripper=gripper,
                      clutch=buttons["clutch"], intervene=buttons["intervene"], estop=latched)

    def _url_host(self) -> str:
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"[{host}]" if ":" in host else host

    # -- server thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported through open() or poll()
            if not self._ready.is_set():
                self._start_error = e
                self._ready.set()
            else:
                log.error("web: server failed: %r", e)

    async def _serve(self) -> None:
        import weakref

        from websockets.asyncio.server import ServerConnection, serve
        from websockets.protocol import State

        sockets = weakref.WeakSet()  # every TCP connection, also those still in handshake

        class Connection(ServerConnection):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                sockets.add(self)

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, self.host, self.port,
                         process_request=self._process_request, create_connection=Connection,
                         compression=None, max_size=self.max_frame,
                         ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                         open_timeout=5.0, close_timeout=1.0,
                         logger=_SERVER_LOG) as server:
            self.address = server.sockets[0].getsockname()
            self.port = self.address[1]
            threading.current_thread().name = f"teleop-web-{self.port}"
            self._ready.set()
            ticker = asyncio.create_task(self._state_loop())
            try:
                await self._stop.wait()
            finally:
                ticker.cancel()
                # A connection still in its opening handshake (a browser's idle preconnect
                # socket) would hold the shutdown for open_timeout: drop it. Open ones get
                # a 1001 close from the server.
                for conn in list(sockets):
                    if conn.protocol.state is State.CONNECTING:
                        conn.transport.abort()

    def _count(self, reason: str, detail: str = "") -> None:
        with self._lock:
            n = self._rejected[reason] = self._rejected.get(reason, 0) + 1
        t = time.monotonic()
        if t - self._log_times.get(reason, -np.inf) > 1.0:  # once per burst and reason
            self._log_times[reason] = t
            log.warning("web: rejected (%s, %d so far): %s", reason, n, detail)

    def _process_request(self, connection, request):
        host_header = request.headers.get("Host", "")
        if _is_loopback(self.host) and _host_name(host_header) not in LOOPBACK_NAMES:
            self._count("bad-host", f"Host header {host_header!r}")
            return connection.respond(403, "forbidden host\n")
        path = urlsplit(request.path).path
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and (urlsplit(origin).netloc.lower() != host_header.lower()
                                       or urlsplit(origin).scheme not in ("http", "https")):
                self._count("origin", f"Origin {origin!r} for Host {host_header!r}")
                return connection.respond(403, "cross-origin websocket refused\n")
            return None
        if path in ("/", "/index.html"):
            resp = connection.respond(200, self._page)
            self._set_type(resp, "text/html; charset=utf-8")
            resp.headers["Content-Security-Policy"] = (
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                "connect-src 'self' ws: wss:; img-src data:; frame-ancestors 'none'")
            resp.headers["Cache-Control"] = "no-store"
            return resp
        if path == "/healthz":
            with self._lock:
                body = {"status": "ok", "clients": len(self._conns),
                        "controller": self._controller is not None}
            resp = connection.respond(200, json.dumps(body) + "\n")
            self._set_type(resp, "application/json")
            return resp
        return connection.respond(404, "not found\n")

    @staticmethod
    def _set_type(resp, content_type: str) -> None:
        del resp.headers["Content-Type"]
        resp.headers["Content-Type"] = content_type

    def _hello(self, role: str) -> str:
        with self._lock:
            gripper, latched = self._gripper, self._estop
        return json.dumps({"type": "hello", "protocol": PROTOCOL, "role": role,
                           "max_linear_speed": self.max_linear_speed,
                           "max_angular_speed": self.max_angular_speed,
                           "max_message": self.max_message, "input_rate_hz": 20.0,
                           "gripper": gripper, "estop": latched})

    def _state_messages(self) -> tuple[object, list, str, str]:
        """(controller, viewers, controller's message, viewers' message)."""
        with self._lock:
            ctrl, viewers = self._controller, [c for c in self._conns if c is not self._controller]
            inp, latched, gripper = self._input, self._estop, self._gripper
            n, seq, t_in = len(self._conns), self._last_seq, self._t_input
        t = time.monotonic()
        prompt = (Prompt.zero(t, gripper=gripper, estop=latched) if inp is None
                  else self._prompt(t, inp, latched))
        body = {"type": "state", "clients": n, "estop": latched, "seq": seq,
                "age": None if t_in is None else round(t - t_in, 4), "prompt": prompt.to_dict()}
        return (ctrl, viewers, json.dumps({**body, "role": CONTROLLER}),
                json.dumps({**body, "role": VIEWER}))

    async def _state_loop(self) -> None:
        from websockets.asyncio.server import broadcast

        period = 1.0 / self.state_rate
        while True:
            await asyncio.sleep(period)
            ctrl, viewers, msg_c, msg_v = self._state_messages()
            if ctrl is not None:
                broadcast([ctrl], msg_c)
            if viewers:
                broadcast(viewers, msg_v)

    def _state_for(self, ws) -> str:
        """The ``state`` message for one client (its role's)."""
        ctrl, _, msg_c, msg_v = self._state_messages()
        return msg_c if ws is ctrl else msg_v

    async def _send_state(self, ws) -> None:
        await ws.send(self._state_for(ws))

    def _latch(self, ws) -> None:
        """(Lock held.) Latch the e-stop; any client may (stopping is always allowed)."""
        if not self._estop:
            self._estop = True
            who = "the controller" if ws is self._controller else "a view-only client"
            log.warning("web: e-stop pressed in the browser by %s", who)

    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            self._conns.append(ws)
            if self._controller is None:
                self._controller = ws
            role = CONTROLLER if self._controller is ws else VIEWER
        promoted = None
        try:
            await ws.send(self._hello(role))
            await self._send_state(ws)
            async for message in ws:
                reply = self._on_message(ws, message)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed as e:
            if e.sent is not None and e.sent.code == 1009:
                self._count("oversize", f"frame over {self.max_frame} bytes; connection closed")
        finally:
            with self._lock:
                self._conns.remove(ws)
                self._seq.pop(ws, None)
                self._last_estop.pop(ws, None)
                if self._controller is ws:
                    # The controller left: its input is stale at once (zero prompt, fresh
                    # False); the oldest remaining client takes over.
                    self._input, self._new, self._t_input = None, False, None
                    self._controller = promoted = self._conns[0] if self._conns else None
            if promoted is not None:
                log.info("web: controller left; %s promoted", promoted.remote_address)
                try:
                    await promoted.send(self._hello(CONTROLLER))
                    await self._send_state(promoted)
                except ConnectionClosed:
                    pass  # its own handler promotes the next one

    def _on_message(self, ws, message) -> str | None:
        """Handle one client message; returns the reply (or None)."""
        try:
            return self._dispatch(ws, message)
        except _Reject as r:
            self._count(r.reason, r.detail)
            return json.dumps({"type": "error", "reason": r.reason, "detail": r.detail[:200]})

    def _dispatch(self, ws, message) -> str | None:
        if isinstance(message, bytes):
            raise _Reject("binary", "binary frames are not accepted; send JSON text")
        if len(message.encode("utf-8")) > self.max_message:
            raise _Reject("oversize", f"message over {self.max_message} bytes")
        try:
            msg = json.loads(message, parse_constant=_no_constants)
        except _Reject:
            raise
        except (ValueError, RecursionError) as e:
            raise _Reject("malformed-json", f"not JSON: {e}") from None
        if not isinstance(msg, dict):
            raise _Reject("not-an-object", "a message is a JSON object with a 'type'")
        kind = msg.get("type")
        if kind == "ping":
            t = msg.get("t")
            return json.dumps({"type": "pong",
                               "t": t if _is_number(t) and abs(t) < 1e15 else None})
        if kind == "estop":
            if set(msg) != {"type"}:
                raise _Reject("bad-field", "estop takes no fields")
            with self._lock:
                if self._controller is ws:
                    # a press: released by an input with estop false before a reset
                    self._last_estop[ws] = True
                self._latch(ws)
            return self._state_for(ws)
        if kind == "input":
            seq, twist, gripper, buttons = parse_input(msg)
            with self._lock:
                if self._controller is not ws:
                    if not buttons["estop"]:
                        raise _Reject("view-only", "another client controls the robot")
                    # stopping is always allowed: a viewer's E-STOP latches, the rest is ignored
                    self._latch(ws)
                    viewer_stop = True
                else:
                    viewer_stop = False
                    last = self._seq.get(ws)
                    if last is not None and seq <= last:
                        raise _Reject("stale-seq", f"seq {seq} after {last}")
                    self._seq[ws] = self._last_seq = seq
                    self._last_estop[ws] = buttons["estop"]
                    self._input, self._new = (twist, gripper, buttons), True
                    self._t_input, self._gripper = time.monotonic(), gripper
                    if buttons["estop"]:
                        self._latch(ws)
            return self._state_for(ws) if viewer_stop else None
        if kind == "reset_estop":
            if set(msg) != {"type"}:
                raise _Reject("bad-field", "reset_estop takes no fields")
            with self._lock:
                if self._controller is not ws:
                    raise _Reject("view-only", "another client controls the robot")
                if self._last_estop.get(ws, True):
                    raise _Reject("estop-held", "release the e-stop (send an input with "
                                  "estop false) before resetting")
                self._clear_estop()
            log.info("web: e-stop reset from the browser")
            return self._state_messages()[2]
        raise _Reject("unknown-type", f"unknown message type {str(kind)[:40]!r}")
