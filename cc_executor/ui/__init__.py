"""`cc-execute ui`: a read-only local web dashboard of task lists, steps and transcripts.

Needs the extra: ``pip install 'cc_executor[ui]'`` (Starlette, Uvicorn, Jinja2). `serve`
runs it until Ctrl-C; `create_app` is the ASGI app itself (for another ASGI server, or
a test). Without the extra both raise `ConfigError` naming the install command.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._extras import install_command
from ..errors import ConfigError

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "is_loopback", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _require_extra() -> None:
    missing = []
    for name in ("starlette", "uvicorn", "jinja2"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"cc-execute ui needs the ui extra ({', '.join(missing)} not installed): "
            f"{install_command('ui')}",
            field="ui",
        )


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(
    state_dir: str | Path | None = None,
    transcript_dir: str | Path | None = None,
    *,
    token: str | None = None,
    loopback: bool = True,
) -> Starlette:
    """The dashboard's ASGI app over `state_dir` (default: this project's records folder)
    and `transcript_dir` (default: $CC_EXECUTOR_TRANSCRIPT_DIR, else every project's
    transcripts). `token`: required on every request (``?token=`` once, then a cookie);
    `loopback`: serve only requests whose Host is a loopback name. Raises `ConfigError`
    without the ui extra."""
    _require_extra()
    from ._app import create_app as make
    from ._store import Sources

    sources = Sources(
        Path(state_dir) if state_dir is not None else None,
        Path(transcript_dir) if transcript_dir is not None else None,
    )
    return make(sources, token=token, loopback=loopback)


def serve(
    state_dir: str | Path | None = None,
    transcript_dir: str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    out: Any = None,
) -> None:
    """Serve the dashboard on `host`:`port` until Ctrl-C, printing its URL to `out`
    (default stdout). Bound to anything but loopback, the URL carries a fresh random
    access token that every request needs. Raises `ConfigError` without the ui extra or
    when the port cannot be bound."""
    _require_extra()
    import uvicorn

    loopback = is_loopback(host)
    token = None if loopback else secrets.token_urlsafe(24)
    app = create_app(state_dir, transcript_dir, token=token, loopback=loopback)
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)  # from here on a request waits for the server instead of failing
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Pass another --port "
            "(or --port 0 for any free one)",
            field="port",
        ) from exc
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{bound}/" + (f"?token={token}" if token else "")
    print(f"cc-execute ui: {url}", file=out or sys.stdout, flush=True)
    if not loopback:
        print(
            "  bound beyond loopback: anyone who can reach this address and has the URL "
            "(token included) can read your runs and transcripts",
            file=out or sys.stdout,
            flush=True,
        )
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
