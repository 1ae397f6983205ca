"""The simulator's MQTT client: paho, QoS 1, driven by the thread that publishes.

Why not paho's network thread and its in-flight limit (what the simulator used before):
- paho's limit (`max_inflight_messages_set`) rescans every message it holds on each PUBACK.
  Once more is queued than may be in flight, each acknowledgement costs time in proportion
  to the queue, and a simulator asked for 8,000 msg/s fell to 1,779.
- its network thread costs a socket-pair write, a wake-up and a GIL hand-over per publish.
So paho's limit is off and the window is ours (`window` publishes awaiting PUBACK, then the
sender waits), and one thread publishes a burst, then reads the PUBACKs that arrived, writes
what is queued and keeps the connection alive (`service`).

Two narrow overrides of paho 2.x internals (`PublisherClient`), each measured on this 2-core
box with a fake socket (tests/unit/test_simulator_paho_patch.py pins the upstream code they
replace, so a paho upgrade that changes it fails a test instead of misbehaving):
- the socket paho writes to gathers a burst of PUBLISH packets into one `send()`, and reads
  64 KiB at a time (paho reads each PUBACK with three `recv()` calls): system CPU per
  message from ~12 to ~1.5 µs, and Mosquitto reads few large segments instead of one per
  message;
- an MQTT 3.1.1 PUBACK (two bytes: the packet id) is handled without building a Properties
  and a ReasonCode object each time (paho does, even for 3.1.1): ~33 -> ~13 µs per PUBACK.
Publishing itself (~20-25 µs per message in paho) is untouched.
"""

from __future__ import annotations

import contextlib
import logging
import select
import struct
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("loadtest.simulator.mqtt")

#: paho numbers in-flight messages with 16-bit ids; the window must stay well below.
MAX_WINDOW = 30_000
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 10.0
#: buffered bytes at which a burst is written without waiting for `flush`
FLUSH_AT = 256 * 1024
READ_CHUNK = 64 * 1024


class CoalescingSocket:
    """What paho sees as its socket: `send` appends to a buffer that `flush` writes in as few
    syscalls as the kernel allows; `recv` serves from one large read."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._out = bytearray()
        self._in = b""
        self._pos = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def send(self, data: bytes | bytearray) -> int:
        self._out += data
        if len(self._out) >= FLUSH_AT:
            self.flush()
        return len(data)

    def flush(self) -> bool:
        """Writes what the kernel takes; True when nothing is left buffered."""
        while self._out:
            try:
                n = self._sock.send(self._out)
            except BlockingIOError:
                return False
            del self._out[:n]
        return True

    @property
    def unsent(self) -> int:
        return len(self._out)

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._in):
            self._in = self._sock.recv(READ_CHUNK)  # BlockingIOError when nothing is there
            self._pos = 0
            if not self._in:
                return b""  # the broker closed the connection
        chunk = self._in[self._pos : self._pos + bufsize]
        self._pos += len(chunk)
        return chunk

    @property
    def buffered(self) -> int:
        """Bytes read from the kernel that paho has not taken yet."""
        return len(self._in) - self._pos

    def close(self) -> None:
        deadline = time.monotonic() + 2.0
        with contextlib.suppress(OSError, ValueError):  # a DISCONNECT may be buffered
            while not self.flush() and time.monotonic() < deadline:
                select.select([], [self._sock], [], 0.05)
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


_PUBACK_OK = ReasonCode(PacketTypes.PUBACK, identifier=0)
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)
_MID = struct.Struct("!H")


class PublisherClient(mqtt.Client):
    """paho's client with the two overrides above (paho-mqtt 2.x)."""

    def _create_socket(self) -> Any:
        return CoalescingSocket(super()._create_socket())

    def _handle_pubackcomp(self, cmd: Any) -> mqtt.MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd == "PUBACK" and self._protocol != mqtt.MQTTv5 and len(packet) == 2:
            (mid,) = _MID.unpack(packet)
            with self._out_message_mutex:
                if mid in self._out_messages:
                    return self._do_on_publish(mid, _PUBACK_OK, _NO_PROPERTIES)
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_pubackcomp(cmd)


class MqttPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        window: int = 1000,
    ) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"the in-flight window must be 1..{MAX_WINDOW}")
        self.client = PublisherClient(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(0)  # the window below, not paho's
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.host, self.port = host, port
        self.window = window
        self.connected = False
        self.connect_error: str | None = None
        #: publishes handed to paho / acknowledged by the broker (one writer each: this thread)
        self.published = 0
        self.acked = 0
        self.reconnects = 0
        self._closing = False
        self._next_misc = 0.0
        self._reconnect_at: float | None = None
        self._reconnect_wait = RECONNECT_MIN_S

    # ---- paho callbacks (run inside loop_read/loop_write, on this thread) ----

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.connect_error = str(rc)
            log.error("MQTT connect refused", extra={"reason": str(rc)})
            return
        self.connected = True
        self._reconnect_wait = RECONNECT_MIN_S
        log.info("connected to MQTT", extra={"host": self.host, "port": self.port})

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected = False
        if not self._closing:
            log.warning("MQTT disconnected; reconnecting", extra={"reason": str(rc)})
            self._reconnect_at = time.monotonic() + self._reconnect_wait

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self.acked += 1

    # ---- use ----

    @property
    def pending(self) -> int:
        """Publishes awaiting PUBACK."""
        return self.published - self.acked

    @property
    def room(self) -> int:
        """Publishes the window still allows."""
        return max(0, self.window - self.pending)

    def connect(self, timeout: float) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"cannot reach MQTT at {self.host}:{self.port}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while not self.connected and self.connect_error is None:
            if time.monotonic() >= deadline:
                break
            self.service(0.1)
        if not self.connected:
            self.close()
            why = self.connect_error or "no CONNACK"
            raise ConnectionError(f"MQTT at {self.host}:{self.port} refused us: {why}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queues one QoS 1 publish (written at once when the socket takes it)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"paho refused to queue a publish: {mqtt.error_string(info.rc)}")
        self.published += 1

    def service(self, timeout: float) -> None:
        """Waits at most `timeout` s for the socket, reads PUBACKs, writes what is queued, keeps
        the connection alive, and reconnects after a loss (paho then sends the unacknowledged
        publishes again: at least once)."""
        sock = self.client.socket()
        if sock is None:
            self._reconnect_if_due()
            time.sleep(timeout)
            return
        flushed = True
        if isinstance(sock, CoalescingSocket):
            try:
                flushed = sock.flush()
            except OSError:  # lost: paho finds out on its next read
                flushed = True
            if sock.buffered:
                timeout = 0.0
        wlist = [sock] if (self.client.want_write() or not flushed) else []
        try:
            readable, writable, _ = select.select([sock], wlist, [], timeout)
        except (OSError, ValueError):  # closed under us: paho reports it on the next call
            readable, writable = [sock], []
        if readable or (isinstance(sock, CoalescingSocket) and sock.buffered):
            self.client.loop_read()
        if writable and self.client.socket() is not None:
            self.client.loop_write()
            current = self.client.socket()
            if isinstance(current, CoalescingSocket):
                with contextlib.suppress(OSError):
                    current.flush()
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + 1.0
            self.client.loop_misc()

    def _reconnect_if_due(self) -> None:
        if self._closing or self._reconnect_at is None or time.monotonic() < self._reconnect_at:
            return
        self.reconnects += 1
        try:
            self.client.reconnect()
            self._reconnect_at = None
        except OSError as exc:
            self._reconnect_wait = min(RECONNECT_MAX_S, self._reconnect_wait * 2)
            self._reconnect_at = time.monotonic() + self._reconnect_wait
            log.warning("MQTT reconnect failed", extra={"error": str(exc)})

    def wait_acked(self, timeout: float) -> bool:
        """Services the connection until every publish is acknowledged or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while self.pending > 0 and time.monotonic() < deadline:
            self.service(0.05)
        return self.pending == 0

    def close(self) -> None:
        self._closing = True
        if self.client.socket() is not None:
            self.client.disconnect()
            deadline = time.monotonic() + 2
            while self.client.socket() is not None and time.monotonic() < deadline:
                self.service(0.05)
        self.connected = False
