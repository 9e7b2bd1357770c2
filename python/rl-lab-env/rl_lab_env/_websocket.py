"""A minimal WebSocket client (RFC 6455) on the standard library's socket.

Just what :mod:`rl_lab_env.policy_client` needs: the opening handshake
(with extra headers, such as ``Authorization``), masked text frames,
fragmented messages, ping/pong and the closing handshake. No extensions,
no third-party packages, so the package drops into any research venv.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
from typing import Any
from urllib.parse import urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class HandshakeError(ConnectionError):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


class ConnectionClosed(ConnectionError):
    """The server closed the connection; ``reason`` says why, when it did."""

    def __init__(self, code: int | None, reason: str):
        text = reason or "the server closed the connection"
        super().__init__(text if code is None else f"{text} (close code {code})")
        self.code = code
        self.reason = reason


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR with the key repeated, as one big integer: far faster than a
    # Python loop over the bytes.
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


class WebSocket:
    """One client connection. Every blocking call honours ``timeout``
    (seconds) and raises :class:`TimeoutError` past it."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
        parts = urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        if parts.scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"{url}: the scheme must be ws, wss, http or https")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._buffer = b""
        self.closed = False
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            raw = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        self._sock = raw
        try:
            self._handshake(host, port, path, headers or {})
        except BaseException:
            self._sock.close()
            raise

    def _handshake(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        fields = status_line.split(" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        response_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if status != 101:
            length = int(response_headers.get("content-length", "0") or 0)
            body = self._read_exactly(length) if length else b""
            raise HandshakeError(status, body.decode("utf-8", "replace"))
        expected = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if response_headers.get("sec-websocket-accept") != expected:
            raise ConnectionError("the server's Sec-WebSocket-Accept does not match the key sent")

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._fill()
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _fill(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError(f"no data from the server within {self.timeout} s") from e
        if not chunk:
            self.closed = True
            raise ConnectionClosed(None, "the server closed the connection without a close frame")
        self._buffer += chunk

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        key = os.urandom(4)
        self._sock.sendall(header + key + _mask(payload, key))

    def send_text(self, text: str) -> None:
        """Sends one text message."""
        if self.closed:
            raise ConnectionClosed(None, "the connection is closed")
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exactly(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        key = self._read_exactly(4) if second & 0x80 else None
        payload = self._read_exactly(length)
        return fin, opcode, _mask(payload, key) if key else payload

    def recv_text(self, timeout: Any = ...) -> str:
        """The next text message; answers pings on the way. A close frame
        from the server raises :class:`ConnectionClosed` with its reason.
        ``timeout`` overrides the connection's for this message (``None``:
        wait as long as it takes)."""
        if timeout is ...:
            return self._recv_text()
        self._sock.settimeout(timeout)
        try:
            return self._recv_text()
        finally:
            self._sock.settimeout(self.timeout)

    def _recv_text(self) -> str:
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
            elif opcode == OP_PONG:
                continue
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self._answer_close(payload[:2])
                raise ConnectionClosed(code, reason)
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8")
            else:
                raise ConnectionError(f"unknown WebSocket opcode {opcode}")

    def _answer_close(self, code: bytes) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._send_frame(OP_CLOSE, code)
            except OSError:
                pass
        self._sock.close()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake: sends a close frame and waits (briefly)
        for the server's."""
        if self.closed:
            self._sock.close()
            return
        self.closed = True
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])
            self._sock.settimeout(min(self.timeout, 2.0))
            while True:
                _, opcode, _ = self._read_frame()
                if opcode == OP_CLOSE:
                    break
        except (OSError, ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            self._sock.close()
