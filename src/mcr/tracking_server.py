"""The MLflow tracking server the jobs of a cluster run log to: start, stop, status, reachability.

On one machine the pipeline writes to ``mlflow.db`` in the checkout directly. On a cluster the
training jobs run on other nodes and log *live* (``tracking.live``), and an sqlite file shared
over NFS by concurrent writers is not safe: one ``mlflow server`` on the login (or a service) node
owns the store, and every job talks HTTP to it. The server also proxies artifacts
(``--artifacts-destination``), so nodes need no access to the artifact folder, only to the URI.

``mcr tracking-server start`` runs it detached (its own session, so a closed terminal does not end
it), waits until ``/health`` answers, and writes ``logs/tracking_server.json`` (PID, URI, store,
log file); ``stop`` ends it by that PID. Nothing here imports mlflow: the server is its own
process, and the check is one HTTP request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = Path("logs/tracking_server.json")
LOG_FILE = Path("logs/tracking_server.log")


class TrackingServerError(RuntimeError):
    """The server could not be started, stopped or reached; the message says what to do."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    uri: str  # what MLFLOW_TRACKING_URI must be on every node
    backend_store_uri: str
    artifacts_destination: str
    log_file: str
    started_at: float


def default_backend(root: Path) -> str:
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def advertised_host(host: str) -> str:
    """The name the nodes reach the server by: ``0.0.0.0``/``::`` bind every interface, so the
    URI names this machine (its fully qualified name) instead."""
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def reachable(uri: str, timeout: float = 5.0) -> str | None:
    """``None`` when the server at ``uri`` answers ``/health``, else why not (one line)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return None
            return f"{uri}/health answered HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{uri}/health answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"no tracking server answers at {uri} ({reason})"


def rest(uri: str, path: str, body: dict | None = None, **query: Any) -> dict:
    """One call of the server's REST API (``/api/2.0/mlflow/<path>``): a POST of ``body`` as
    JSON, or a GET with ``query``. What a browser or another node sees; no mlflow import."""
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for a server of one's own, e.g. in tests)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def read_state(state_file: Path = STATE_FILE) -> ServerState | None:
    if not state_file.is_file():
        return None
    try:
        return ServerState(**json.loads(state_file.read_text()))
    except (ValueError, TypeError) as exc:
        raise TrackingServerError(
            f"{state_file}: not a tracking-server state file ({exc})"
        ) from None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (``kill -0`` succeeds on zombies)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return True


def start(
    host: str = "127.0.0.1",
    port: int = 5000,
    backend_store_uri: str | None = None,
    artifacts_destination: str | Path | None = None,
    *,
    root: Path | None = None,
    state_file: Path = STATE_FILE,
    wait_s: float = 120.0,
) -> ServerState:
    """Start ``mlflow server`` detached and wait for it to answer; refuse a second one.

    Args:
        host: the interface to bind (``0.0.0.0`` for a cluster: the nodes connect from outside).
        backend_store_uri: sqlite file (default ``mlflow.db`` in the checkout) or a database URI
            (``postgresql://...``) for a real deployment.
        artifacts_destination: where the server keeps artifacts (default ``mlartifacts/`` in the
            checkout); the jobs upload through the server, so only it needs the folder.
    """
    root = (root or Path.cwd()).resolve()
    state_file = root / state_file  # an absolute state_file stays as it is
    running = read_state(state_file)
    if running is not None and alive(running.pid):
        raise TrackingServerError(
            f"a tracking server is already running (PID {running.pid}, {running.uri}); "
            "stop it first: mcr tracking-server stop"
        )
    backend = backend_store_uri or default_backend(root)
    artifacts = Path(artifacts_destination or root / "mlartifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    name = advertised_host(host)
    uri = f"http://{name}:{port}"
    if reachable(uri, timeout=2.0) is None:
        raise TrackingServerError(f"port {port} already serves a tracking server ({uri})")
    log_file = root / LOG_FILE
    log_file.parent.mkdir(parents=True, exist_ok=True)
    allowed = ",".join(dict.fromkeys([name, f"{name}:{port}", "localhost", f"localhost:{port}",
                                      "127.0.0.1", f"127.0.0.1:{port}"]))  # fmt: skip
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
        "--host", host, "--port", str(port), "--workers", "1", "--allowed-hosts", allowed,
    ]  # fmt: skip
    # Job execution is MLflow's GenAI scoring queue: 8 worker processes of ~240 MB each that
    # this project never uses.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # fmt: skip
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while (problem := reachable(uri, timeout=2.0)) is not None:
        if process.poll() is not None:
            raise TrackingServerError(
                f"mlflow server exited with code {process.returncode} before answering; "
                f"see {log_file}"
            )
        if time.monotonic() > deadline:
            _terminate(process.pid)
            raise TrackingServerError(f"{problem} after {wait_s:.0f} s; see {log_file}")
        time.sleep(0.5)
    state = ServerState(process.pid, uri, backend, str(artifacts), str(log_file), time.time())
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state


def stop(*, root: Path | None = None, state_file: Path = STATE_FILE, wait_s: float = 30.0) -> int:
    """End the server recorded in ``state_file`` (its whole process group) by PID.

    Returns:
        The PID that was stopped.
    """
    root = (root or Path.cwd()).resolve()
    state_file = root / state_file  # an absolute state_file stays as it is
    state = read_state(state_file)
    if state is None:
        raise TrackingServerError(f"{state_file} not found: no tracking server was started here")
    if alive(state.pid):
        _terminate(state.pid, wait_s)
    state_file.unlink()
    return state.pid


def _terminate(pid: int, wait_s: float = 30.0) -> None:
    """SIGTERM to the process group (the server and its workers), SIGKILL after ``wait_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not alive(pid):
            return
