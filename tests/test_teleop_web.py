"""Browser teleop device (robot_ctrl.teleop.web): the protocol through a real websockets
client, the HTTP routes, the server's lifecycle, and the page itself in real headless
Chromium (Debian's /usr/bin/chromium + chromedriver, driven by Selenium) — drag the joystick
and sliders, press the buttons, check the prompt that `poll` returns.

Screen → robot base frame: joystick up = +x (forward), left = +y; z slider up = +z; yaw
slider left = +yaw (counter-clockwise seen from above).
"""
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from robot_ctrl.teleop import DEVICES, Deadman, make_device
from robot_ctrl.teleop.web import BIND_FAILED, WebDevice

V, W = 0.2, 0.8  # max linear / angular speed of the devices under test
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def wait_for(pred, timeout=5.0, what="condition", period=0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(period)


def poll_until(dev, pred, timeout=5.0, what="prompt"):
    """Poll the device until pred(prompt) holds; returns that prompt."""
    deadline = time.monotonic() + timeout
    while True:
        p = dev.poll(time.monotonic())
        if pred(p):
            return p
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last prompt {p.to_dict()}")
        time.sleep(0.01)


def stays(dev, pred, duration=0.3):
    """pred(prompt, fresh) holds on every poll for `duration` s."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        p = dev.poll(time.monotonic())
        assert pred(p, dev.fresh), (p.to_dict(), dev.fresh)
        time.sleep(0.01)


def inp(seq, twist=(0, 0, 0, 0, 0, 0), gripper=1.0, clutch=False, intervene=False, estop=False):
    return {"type": "input", "seq": seq, "twist": list(twist), "gripper": gripper,
            "buttons": {"clutch": clutch, "intervene": intervene, "estop": estop}}


def client(dev, **kw):
    return connect(dev.ws_url, proxy=None, open_timeout=5, close_timeout=1, **kw)


def recv_type(ws, kind, timeout=3.0):
    """Next message of type `kind` (state broadcasts and others in between are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind!r} message within {timeout} s")
        try:
            m = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        if m["type"] == kind:
            return m


def recv_state(ws, estop, timeout=3.0):
    """Next ``state`` message whose e-stop flag is `estop` (earlier broadcasts are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        m = recv_type(ws, "state", timeout=max(0.01, deadline - time.monotonic()))
        if m["estop"] is estop:
            return m


def send(ws, msg):
    ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))


def web_threads():
    return [t for t in threading.enumerate() if t.name.startswith("teleop-web")]


@pytest.fixture
def dev():
    d = WebDevice(max_linear_speed=V, max_angular_speed=W).open()
    assert d.ok, d.error
    yield d
    d.close()
    assert not web_threads()


# ---------------------------------------------------------------------------------------
# server, HTTP routes, lifecycle
# ---------------------------------------------------------------------------------------

def test_registered_and_binds_loopback_by_default(dev):
    assert DEVICES["web"] is WebDevice and WebDevice.name == "web"
    assert isinstance(make_device("web", port=0), WebDevice)
    assert dev.host == "127.0.0.1" and dev.address[0] == "127.0.0.1"
    assert dev.port == dev.address[1] > 0
    assert dev.url == f"http://127.0.0.1:{dev.port}/"
    assert dev.ws_url == f"ws://127.0.0.1:{dev.port}/ws"
    assert WebDevice(host="localhost").host == "127.0.0.1"


def test_http_routes(dev):
    r = NO_PROXY.open(dev.url, timeout=5)
    body = r.read().decode()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    for elem in ("conn", "joystick", "knob", "z", "yaw", "gripper", "clutch", "intervene",
                 "estop", "reset"):
        assert f'id="{elem}"' in body
    # self-contained: no external resources
    assert "http://" not in body and "https://" not in body and "src=" not in body

    r = NO_PROXY.open(dev.url + "healthz", timeout=5)
    assert r.status == 200 and json.loads(r.read()) == {
        "status": "ok", "clients": 0, "controller": False}

    with pytest.raises(urllib.error.HTTPError) as e:
        NO_PROXY.open(dev.url + "nope", timeout=5)
    assert e.value.code == 404
    e.value.close()

    # DNS rebinding: a non-loopback Host header on a loopback bind is refused
    conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=5)
    conn.request("GET", "/", headers={"Host": f"evil.example:{dev.port}"})
    assert conn.getresponse().status == 403
    conn.close()
    assert dev.rejected == {"bad-host": 1}


def test_cross_origin_websocket_refused(dev):
    with pytest.raises(InvalidStatus) as e:
        client(dev, origin="http://evil.example")
    assert e.value.response.status_code == 403
    assert dev.rejected == {"origin": 1}
    with client(dev, origin=f"http://127.0.0.1:{dev.port}") as ws:  # the page's own origin
        assert recv_type(ws, "hello")["role"] == "controller"


def test_close_stops_thread_and_frees_port():
    d = WebDevice().open()
    port = d.port
    assert d.ok and len(web_threads()) == 1
    with client(d) as ws:
        recv_type(ws, "hello")
        d.close()
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                ws.recv(timeout=2)
    assert d.status == "closed" and not web_threads()
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    d.open()  # reopens on the same port
    assert d.ok and d.port == port
    d.close()
    d.close()  # idempotent
    assert not web_threads()


def test_port_in_use_is_reported_not_raised():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        d = WebDevice(port=s.getsockname()[1]).open()
        assert d.status == BIND_FAILED and "cannot listen" in d.error
        p = d.poll(1.0)
        assert p.mode == "none" and not d.fresh and not np.any(p.twist)
        d.close()
    assert not web_threads()


# ---------------------------------------------------------------------------------------
# protocol
# ---------------------------------------------------------------------------------------

def test_input_is_scaled_into_a_twist_prompt(dev):
    p = dev.poll(0.5)
    assert p.mode == "none" and not dev.fresh
    with client(dev) as ws:
        hello = recv_type(ws, "hello")
        assert hello["role"] == "controller" and hello["max_linear_speed"] == V
        send(ws, inp(1, (1, -0.5, 0.25, 0.1, -1, 0.5), gripper=-1, clutch=True, intervene=True))
        p = poll_until(dev, lambda p: dev.fresh)
        assert p.mode == "twist" and p.stamp > 0
        np.testing.assert_allclose(p.twist, [V, -0.5 * V, 0.25 * V, 0.1 * W, -W, 0.5 * W])
        assert (p.gripper, p.clutch, p.intervene, p.estop) == (-1.0, True, True, False)
        q = dev.poll(123.0)  # no new message: same command, not fresh, stamped now
        assert not dev.fresh and q.stamp == 123.0 and np.array_equal(q.twist, p.twist)
        state = recv_type(ws, "state")
        assert state["role"] == "controller" and state["clients"] == 1
        send(ws, {"type": "ping", "t": 7.5})
        assert recv_type(ws, "pong")["t"] == 7.5
    assert dev.rejected == {}


BAD = [
    ("not json", "malformed-json"),
    ('{"type": "input", "seq": 2', "malformed-json"),
    ("[1, 2, 3]", "not-an-object"),
    ('"input"', "not-an-object"),
    ('{"type": "fly"}', "unknown-type"),
    ('{"seq": 2}', "unknown-type"),
    # NaN / Infinity literals: Python's json accepts them unless told not to
    (json.dumps(inp(2, (float("nan"), 0, 0, 0, 0, 0))), "non-finite"),
    (json.dumps(inp(2, gripper=float("-inf"))), "non-finite"),
    (json.dumps(inp(2)).replace('"gripper": 1.0', '"gripper": 1e999'), "non-finite"),
    (json.dumps(inp(2, (0,) * 5)), "bad-field"),
    (json.dumps(inp(2, (0,) * 7)), "bad-field"),
    (json.dumps(inp(2, ("1", 0, 0, 0, 0, 0))), "bad-field"),
    (json.dumps(inp(2, (True, 0, 0, 0, 0, 0))), "bad-field"),
    (json.dumps({**inp(2), "twist": {"x": 1}}), "bad-field"),
    (json.dumps(inp(2, (1.5, 0, 0, 0, 0, 0))), "out-of-range"),
    (json.dumps(inp(2, (0, 0, 0, 0, 0, -1.01), estop=True)), "out-of-range"),  # estop ignored
    (json.dumps(inp(2, gripper=-2)), "out-of-range"),
    (json.dumps(inp(2, estop=1)), "bad-field"),
    (json.dumps({**inp(2), "buttons": {"clutch": False, "estop": False}}), "bad-field"),
    (json.dumps({**inp(2), "extra": 1}), "bad-field"),
    (json.dumps({k: v for k, v in inp(2).items() if k != "gripper"}), "bad-field"),
    (json.dumps(inp(-1)), "bad-field"),
    (json.dumps(inp(2.5)), "bad-field"),
    (json.dumps(inp(True)), "bad-field"),
    (json.dumps(inp(1)), "stale-seq"),  # seq 1 was accepted already
    (json.dumps({**inp(2), "pad": "x" * 5000}), "oversize"),
    (b'{"type": "ping"}', "binary"),
    ('{"type": "reset_estop", "now": true}', "bad-field"),
    ('{"type": "estop", "now": true}', "bad-field"),  # a malformed e-stop latches nothing
]


def test_bad_messages_are_rejected_counted_and_change_nothing(dev):
    with client(dev) as ws:
        recv_type(ws, "hello")
        send(ws, inp(1, (0.5, 0, 0, 0, 0, 0), gripper=-1))
        good = poll_until(dev, lambda p: dev.fresh)
        expected = {}
        for msg, reason in BAD:
            send(ws, msg)
            err = recv_type(ws, "error")
            assert err["reason"] == reason, (msg[:80], err)
            expected[reason] = expected.get(reason, 0) + 1
            p = dev.poll(good.stamp)
            assert not dev.fresh and p == good, msg[:80]
            assert not dev.estop_latched
        assert dev.rejected == expected
        send(ws, inp(2, (0, 0.5, 0, 0, 0, 0)))  # the server still takes good input
        p = poll_until(dev, lambda p: dev.fresh)
        np.testing.assert_allclose(p.twist, [0, 0.5 * V, 0, 0, 0, 0])

    # A frame over the transport limit closes that connection (1009) and is counted too.
    with client(dev) as ws:
        recv_type(ws, "hello")
        send(ws, "x" * (dev.max_frame + 1))
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(100):
                ws.recv(timeout=2)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009
    wait_for(lambda: dev.rejected.get("oversize") == expected["oversize"] + 1,
             what="oversize frame counted")
    with client(dev) as ws:  # still serving
        assert recv_type(ws, "hello")["role"] == "controller"


def test_one_controller_viewers_are_view_only_and_take_over(dev):
    with client(dev) as a, client(dev) as b:
        assert recv_type(a, "hello")["role"] == "controller"
        assert recv_type(b, "hello")["role"] == "viewer"
        assert recv_type(b, "state")["role"] == "viewer"
        wait_for(lambda: dev.clients == 2, what="two clients")
        send(a, inp(1, (0.3, 0, 0, 0, 0, 0), gripper=-1))
        good = poll_until(dev, lambda p: dev.fresh)
        for msg in (inp(7, (-1, 0, 0, 0, 0, 0), gripper=1, intervene=True), {"type": "reset_estop"}):
            send(b, msg)
            assert recv_type(b, "error")["reason"] == "view-only"
        assert dev.rejected == {"view-only": 2}
        p = dev.poll(good.stamp)
        assert p == good and not dev.fresh and not dev.estop_latched

        a.close()  # the controller leaves: its input is dropped, the viewer takes over
        hello = recv_type(b, "hello")
        assert hello["role"] == "controller" and hello["gripper"] == -1  # the command to keep
        assert dev.clients == 1 and dev.controller_connected
        p = dev.poll(1.0)
        assert p.mode == "none" and not np.any(p.twist) and not dev.fresh and p.gripper == -1
        send(b, inp(1, (0, 0, -1, 0, 0, 0)))
        p = poll_until(dev, lambda p: dev.fresh)
        np.testing.assert_allclose(p.twist, [0, 0, -V, 0, 0, 0])
        assert recv_type(b, "state")["role"] == "controller"
    assert dev.rejected == {"view-only": 2}


def test_controller_disconnect_goes_stale_and_deadman_trips(dev):
    deadman = Deadman(timeout=0.1)
    with client(dev) as ws:
        recv_type(ws, "hello")
        send(ws, inp(1, (1, 0, 0, 0, 0, 0), gripper=-1))
        p = poll_until(dev, lambda p: dev.fresh)
        assert deadman.update(p.stamp, p).twist[0] == V
    wait_for(lambda: not dev.controller_connected, what="the controller to leave")
    t0 = time.monotonic()
    p = dev.poll(t0)
    assert not dev.fresh and p.mode == "none" and not np.any(p.twist) and p.gripper == -1.0
    out = deadman.update(t0 + 0.2, p if dev.fresh else None)
    assert deadman.tripped and not np.any(out.twist) and out.gripper == -1.0


def test_estop_latches_until_released_and_reset(dev):
    with client(dev) as ws:
        recv_type(ws, "hello")
        send(ws, {"type": "reset_estop"})  # before any input: the button state is unknown
        assert recv_type(ws, "error")["reason"] == "estop-held"
        send(ws, inp(1, (1, 0, 0, 0, 0, 0), estop=True))
        p = poll_until(dev, lambda p: dev.fresh)
        assert p.estop and not np.any(p.twist) and dev.estop_latched
        send(ws, {"type": "reset_estop"})  # still held
        assert recv_type(ws, "error")["reason"] == "estop-held"
        send(ws, inp(2, (1, 0, 0, 0, 0, 0)))  # released, not reset: still latched, no motion
        p = poll_until(dev, lambda p: dev.fresh)
        assert p.estop and not np.any(p.twist)
        send(ws, {"type": "reset_estop"})
        state = recv_type(ws, "state")
        assert state["estop"] is False and not any(state["prompt"]["twist"])
        p = dev.poll(time.monotonic())  # the reset itself starts no motion ...
        assert not p.estop and p.mode == "none" and not np.any(p.twist) and not dev.fresh
        send(ws, inp(3, (1, 0, 0, 0, 0, 0)))  # ... the next input does
        p = poll_until(dev, lambda p: dev.fresh)
        assert not p.estop and p.twist[0] == pytest.approx(V)
        send(ws, inp(4, estop=True))
        poll_until(dev, lambda p: p.estop)
    # the latch survives the controller leaving
    wait_for(lambda: not dev.controller_connected, what="the controller to leave")
    p = dev.poll(time.monotonic())
    assert p.estop and p.mode == "none"
    dev.reset_estop()
    assert not dev.poll(time.monotonic()).estop
    assert dev.rejected == {"estop-held": 2}


def test_any_station_may_estop_only_the_controller_resets(dev):
    """Stopping is always allowed: a viewer's E-STOP (an input with buttons.estop, or an
    {"type": "estop"} message) latches the e-stop; nothing else of a viewer's input is used,
    and only the controller resets it."""
    with client(dev) as a, client(dev) as b:
        assert recv_type(a, "hello")["role"] == "controller"
        assert recv_type(b, "hello")["role"] == "viewer"
        send(a, inp(1, (0.5, 0, 0, 0, 0, 0)))
        poll_until(dev, lambda p: dev.fresh and p.twist[0] == pytest.approx(0.5 * V))

        # 1. a viewer's input with estop true: latched, its twist/gripper/buttons ignored
        send(b, inp(1, (-1, 0, 0, 0, 0, 0), gripper=-1, clutch=True, estop=True))
        state = recv_state(b, True)
        assert state["role"] == "viewer"
        assert dev.estop_latched
        p = dev.poll(time.monotonic())
        assert p.estop and not np.any(p.twist) and p.gripper == 1.0 and not p.clutch
        recv_state(a, True)  # the controller sees it too
        # the controller keeps sending: still stopped
        send(a, inp(2, (1, 0, 0, 0, 0, 0)))
        p = poll_until(dev, lambda p: dev.fresh)
        assert p.estop and not np.any(p.twist)
        # the viewer cannot reset it; the controller can (its last input has estop false)
        send(b, {"type": "reset_estop"})
        assert recv_type(b, "error")["reason"] == "view-only"
        assert dev.estop_latched
        send(a, {"type": "reset_estop"})
        wait_for(lambda: not dev.estop_latched, what="the controller's reset")
        send(a, inp(3, (1, 0, 0, 0, 0, 0)))
        p = poll_until(dev, lambda p: dev.fresh)
        assert not p.estop and p.twist[0] == pytest.approx(V)

        # 2. a viewer's {"type": "estop"} message latches too
        send(b, {"type": "estop"})
        wait_for(lambda: dev.estop_latched, what="the viewer's estop message")
        p = dev.poll(time.monotonic())
        assert p.estop and not np.any(p.twist)
        send(a, {"type": "reset_estop"})
        wait_for(lambda: not dev.estop_latched, what="the controller's reset")

        # 3. the controller's own estop message is a press: released by an input before a reset
        send(a, inp(4, (0.5, 0, 0, 0, 0, 0)))
        poll_until(dev, lambda p: dev.fresh and p.twist[0] > 0)
        send(a, {"type": "estop"})
        wait_for(lambda: dev.estop_latched, what="the controller's estop message")
        send(a, {"type": "reset_estop"})
        assert recv_type(a, "error")["reason"] == "estop-held"
        assert dev.estop_latched
        send(a, inp(5))
        send(a, {"type": "reset_estop"})
        wait_for(lambda: not dev.estop_latched, what="the controller's reset after the release")

        # everything else from a viewer stays view-only
        send(b, inp(9, (0, 1, 0, 0, 0, 0)))
        assert recv_type(b, "error")["reason"] == "view-only"
        assert not dev.estop_latched
    assert dev.rejected == {"view-only": 2, "estop-held": 1}


# ---------------------------------------------------------------------------------------
# the page in real headless Chromium
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"headless browser tests need Debian's chromium and chromedriver; "
                    f"missing {', '.join(missing)} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--no-proxy-server", "--window-size=1000,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(15)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, dev):
    """The browser on the device's page, connected as the controller."""
    browser.get(dev.url)
    wait_role(browser, "controller")
    yield browser
    for handle in browser.window_handles[1:]:  # leave one blank window for the next test
        browser.switch_to.window(handle)
        browser.close()
    browser.switch_to.window(browser.window_handles[0])
    browser.get("about:blank")


def wait_role(driver, role, timeout=10.0):
    from selenium.webdriver.common.by import By

    def ok():
        conn = driver.find_element(By.ID, "conn")
        return ("connected" in conn.get_attribute("class").split()
                and conn.get_attribute("data-role") == role)

    wait_for(ok, timeout, f"the page to show 'connected' as {role}", period=0.05)
    text = driver.find_element(By.ID, "conn").text
    assert "connected" in text and ("controller" if role == "controller" else "view-only") in text


def drag(driver, elem_id, dx, dy):
    """Press on the element's centre and move by (dx, dy) px, still held."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(driver).click_and_hold(driver.find_element(By.ID, elem_id)) \
        .move_by_offset(dx, dy).perform()


def release(driver):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).release().perform()


def click(driver, elem_id):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, elem_id).click()


def near(a, b, tol=0.03):
    return np.allclose(a, b, atol=tol * max(V, W))


def test_browser_joystick_sliders_and_buttons(page, dev):
    def fresh_zero(p):
        return dev.fresh and p.mode == "twist" and not np.any(p.twist)

    poll_until(dev, fresh_zero, what="the page's 20 Hz zero input")

    # joystick: up = +x (forward), left = +y; to the edge = full speed; release = zero
    for (dx, dy), expected in (((0, -130), [V, 0, 0, 0, 0, 0]), ((-130, 0), [0, V, 0, 0, 0, 0]),
                               ((130, 130), [-V / 2**0.5, -V / 2**0.5, 0, 0, 0, 0])):
        drag(page, "joystick", dx, dy)
        poll_until(dev, lambda p, e=expected: near(p.twist, e), what=f"twist {expected}")
        release(page)
        poll_until(dev, fresh_zero, what="the joystick to spring back")

    # half way up: about half speed
    drag(page, "joystick", 0, -40)
    p = poll_until(dev, lambda p: p.twist[0] > 0.2 * V, what="half deflection")
    assert 0.3 * V < p.twist[0] < 0.7 * V and abs(p.twist[1]) < 0.03 * V
    release(page)
    poll_until(dev, fresh_zero, what="the joystick to spring back")

    # z slider up = +z, yaw slider left = +yaw; both spring back
    for elem, (dx, dy), expected in (("z", (0, -130), [0, 0, V, 0, 0, 0]),
                                     ("z", (0, 130), [0, 0, -V, 0, 0, 0]),
                                     ("yaw", (-170, 0), [0, 0, 0, 0, 0, W]),
                                     ("yaw", (170, 0), [0, 0, 0, 0, 0, -W])):
        drag(page, elem, dx, dy)
        poll_until(dev, lambda p, e=expected: near(p.twist, e), what=f"{elem} -> {expected}")
        release(page)
        poll_until(dev, fresh_zero, what=f"{elem} to spring back")

    # gripper toggles (starts open, +1)
    assert dev.poll(0.0).gripper == 1.0
    click(page, "gripper")
    poll_until(dev, lambda p: p.gripper == -1.0, what="gripper closed")
    click(page, "gripper")
    poll_until(dev, lambda p: p.gripper == 1.0, what="gripper open")

    # clutch is held, intervene toggles
    drag(page, "clutch", 0, 0)
    poll_until(dev, lambda p: p.clutch, what="clutch held")
    release(page)
    poll_until(dev, lambda p: dev.fresh and not p.clutch, what="clutch released")
    click(page, "intervene")
    poll_until(dev, lambda p: p.intervene, what="intervene on")
    click(page, "intervene")
    poll_until(dev, lambda p: dev.fresh and not p.intervene, what="intervene off")

    # E-STOP latches (no motion while latched); the page's reset releases it
    click(page, "estop")
    poll_until(dev, lambda p: p.estop, what="e-stop")
    drag(page, "joystick", 0, -130)
    stays(dev, lambda p, fresh: p.estop and not np.any(p.twist))
    release(page)
    click(page, "reset")
    poll_until(dev, lambda p: dev.fresh and not p.estop, what="e-stop reset")
    assert dev.rejected == {}


def test_browser_second_window_is_view_only_then_takes_over(page, dev):
    from selenium.webdriver.common.by import By

    controller = page.current_window_handle
    page.switch_to.new_window("window")
    page.get(dev.url)
    wait_role(page, "viewer")
    viewer = page.current_window_handle
    # view-only: driving controls and the reset disabled; the E-STOP stays enabled
    for elem in ("gripper", "clutch", "intervene", "zero", "reset"):
        assert not page.find_element(By.ID, elem).is_enabled(), elem
    assert page.find_element(By.ID, "estop").is_enabled()
    wait_for(lambda: dev.clients == 2, what="two clients")

    # drive from the controller window
    page.switch_to.window(controller)
    drag(page, "joystick", 0, -130)
    poll_until(dev, lambda p: near(p.twist, [V, 0, 0, 0, 0, 0]), what="+x from the controller")

    # the viewer's page pushes commands anyway (as a tampered page could): rejected
    page.switch_to.window(viewer)
    page.execute_script("""
        for (let i = 0; i < 3; i++) teleop.send({type: "input", seq: 1000 + i,
            twist: [-1, 0, 0, 0, 0, 0], gripper: -1,
            buttons: {clutch: true, intervene: true, estop: false}});""")
    wait_for(lambda: dev.rejected.get("view-only") == 3, what="3 view-only rejections")
    stays(dev, lambda p, fresh: near(p.twist, [V, 0, 0, 0, 0, 0]) and not p.estop
          and p.gripper == 1.0, duration=0.2)

    # closing the controller's page hands control to the viewer
    page.switch_to.window(controller)
    release(page)
    page.close()
    page.switch_to.window(viewer)
    wait_role(page, "controller")
    assert page.find_element(By.ID, "estop").is_enabled()
    drag(page, "joystick", -130, 0)
    poll_until(dev, lambda p: near(p.twist, [0, V, 0, 0, 0, 0]), what="+y from the new controller")
    release(page)


def test_browser_viewer_estop_stops_and_only_the_controller_resets(page, dev):
    from selenium.webdriver.common.by import By

    controller = page.current_window_handle
    page.switch_to.window(controller)
    drag(page, "joystick", 0, -130)
    poll_until(dev, lambda p: near(p.twist, [V, 0, 0, 0, 0, 0]), what="+x from the controller")

    page.switch_to.new_window("window")
    page.get(dev.url)
    wait_role(page, "viewer")
    viewer = page.current_window_handle
    wait_for(lambda: dev.clients == 2, what="two clients")
    click(page, "estop")  # the viewer's E-STOP button
    poll_until(dev, lambda p: p.estop and not np.any(p.twist), what="e-stop from the viewer")
    assert dev.estop_latched
    wait_for(lambda: "latched" in page.find_element(By.ID, "estop").text, what="viewer shows latched")
    assert not page.find_element(By.ID, "reset").is_enabled()  # the viewer cannot reset
    # the controller still drags: stopped all the same
    stays(dev, lambda p, fresh: p.estop and not np.any(p.twist), duration=0.3)
    assert dev.rejected == {}

    # the controller's page shows the latch and resets it
    page.switch_to.window(controller)
    release(page)
    wait_for(lambda: page.find_element(By.ID, "reset").is_enabled(), what="the controller's reset enabled")
    assert "latched" in page.find_element(By.ID, "estop").text
    click(page, "reset")
    poll_until(dev, lambda p: dev.fresh and not p.estop, what="e-stop reset by the controller")
    drag(page, "joystick", -130, 0)
    poll_until(dev, lambda p: near(p.twist, [0, V, 0, 0, 0, 0]), what="+y after the reset")
    release(page)
    page.switch_to.window(viewer)
    wait_for(lambda: page.find_element(By.ID, "estop").text == "E-STOP", what="viewer shows released")
    assert dev.rejected == {}


def test_browser_closing_the_page_makes_the_prompt_stale(page, dev):
    drag(page, "joystick", 0, -130)
    poll_until(dev, lambda p: dev.fresh and near(p.twist, [V, 0, 0, 0, 0, 0]), what="+x")
    page.get("about:blank")  # the page goes away mid-drag
    wait_for(lambda: not dev.controller_connected, what="the controller to leave")
    stays(dev, lambda p, fresh: not fresh and p.mode == "none" and not np.any(p.twist))
    release(page)


def test_browser_input_reaches_the_ros_topics(browser, ros):
    """The whole path: the page in Chromium → websocket → the teleop node (web device) →
    /teleop/twist and /estop on DDS, as the policy node and the safety filter receive them."""
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool

    from robot_ctrl.ros.teleop_msgs import BUTTON_QOS, COMMAND_STREAM_QOS
    from robot_ctrl.ros.teleop_node import TeleopNode

    d = WebDevice(max_linear_speed=V, max_angular_speed=W)
    node = TeleopNode(device=d, parameter_overrides=[Parameter("device", value="web")])
    twists, estops = [], []
    ros.create_subscription(TwistStamped, "/teleop/twist", twists.append, COMMAND_STREAM_QOS)
    ros.create_subscription(Bool, "/estop", lambda m: estops.append(m.data), BUTTON_QOS)
    ex = rclpy.executors.SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(ros)

    def spin_until(pred, timeout=10.0, what=""):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.01)
            if pred():
                return
        raise AssertionError(f"timed out waiting for {what}")

    try:
        assert d.ok, d.error
        browser.get(d.url)
        wait_role(browser, "controller")
        drag(browser, "joystick", 0, -130)  # up: +x at full speed
        spin_until(lambda: twists and twists[-1].twist.linear.x > 0.9 * V, what="+x on /teleop/twist")
        assert abs(twists[-1].twist.linear.y) < 0.05 * V and twists[-1].header.frame_id == "panda_link0"
        release(browser)
        spin_until(lambda: twists[-1].twist.linear.x == 0.0, what="zero after release")
        click(browser, "estop")
        spin_until(lambda: True in estops, what="/estop true")
    finally:
        browser.get("about:blank")
        ex.remove_node(node)
        node.destroy_node()
        d.close()
