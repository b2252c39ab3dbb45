"""A TCP proxy in front of a real server that can be made to hang: it keeps accepting
connections and reading requests but answers nothing, as a wedged server or a black-holed
network path does (a refused connection is the easy case; this one needs timeouts)."""

from __future__ import annotations

import contextlib
import socket
import threading


class HangingProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.hung = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self.hung.set()

    def resume(self) -> None:
        self.hung.clear()

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            # Without Nagle's algorithm: a request forwarded in pieces otherwise waits for a
            # delayed ACK (~40 ms a request, seconds for a model's ~100 files).
            sink.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := source.recv(65536):
                if not self.hung.is_set():  # hung: read and drop, never answer
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                # shutdown() first: close() alone leaves the socket open while the other
                # direction's pump is blocked reading it, so a client would reuse a
                # connection the server had already closed (a keep-alive timeout).
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
