"""Who may call an rsir web app, and keeping their tokens out of logs.

- ``check_token`` / ``check_bind``: a token must be long and plain enough to be a secret (no empty,
  blank or short ones), and binding beyond loopback needs one.
- ``TokenAuth``: ASGI middleware. The shared token (``--token``) makes the caller the *owner*; with a
  ``personal`` look-up (the annotation app's invites) a personal token makes the caller that *annotator*.
  The caller is left in ``request.state.rsir_caller`` for the routes.
- ``TokenMaskFilter`` / ``uvicorn_log_config``: ``?token=...`` in a logged URL becomes ``?token=***``.
"""

from __future__ import annotations

import copy
import hmac
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import JSONResponse

TOKEN_HEADER = "x-rsir-token"
TOKEN_COOKIE = "rsir_token"
TOKEN_QUERY = "token"
MIN_TOKEN_LENGTH = 16
CALLER = "rsir_caller"  # key in request.state


class BindError(ValueError):
    pass


@dataclass(frozen=True)
class Caller:
    """``owner`` (the shared token, or anyone on an open loopback server) or ``annotator`` (a personal token)."""

    role: Literal["owner", "annotator"]
    name: str | None = None  # the annotator's; None for the owner


OWNER = Caller("owner")


def caller_of(request: Request) -> Caller:
    return getattr(request.state, CALLER, OWNER)


def check_token(token: str) -> None:
    """BindError unless ``token`` is at least 16 printable ASCII characters without spaces."""
    if not token or not token.strip():
        raise BindError("the token is empty: give a secret of at least 16 characters, or no token at all")
    if len(token) < MIN_TOKEN_LENGTH:
        raise BindError(f"the token is too short ({len(token)} characters): use at least {MIN_TOKEN_LENGTH}, "
                        "e.g. python -c \"import secrets; print(secrets.token_urlsafe(24))\"")  # fmt: skip
    if not all(33 <= ord(c) < 127 for c in token):
        raise BindError("the token may hold printable ASCII characters only, no spaces")


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse a token that is no secret, and exposing the service beyond this machine without one."""
    if token is not None:
        check_token(token)
    if not is_loopback(host) and token is None:
        raise BindError(
            f"binding to {host} exposes the service to the network: give a token with --token or RSIR_TOKEN "
            "(every request must then carry it), or bind to 127.0.0.1"
        )


class TokenAuth:
    """ASGI middleware: the token comes as ``Authorization: Bearer``, ``X-RSIR-Token``, ``?token=`` or the
    ``rsir_token`` cookie (in that order: a link's token wins over an older cookie). A valid ``?token=``
    sets the cookie, so a page opened once with the token in its address loads its scripts, images and
    API calls without repeating it.

    ``token`` None is an open server (loopback only): every caller is the owner, except one presenting a
    personal token, who is that annotator."""

    def __init__(self, app, token: str | None, personal: Callable[[str], str | None] | None = None) -> None:
        if token is not None:
            check_token(token)
        self.app, self.personal = app, personal
        self.token = token.encode() if token is not None else None

    @staticmethod
    def _presented(request: Request) -> tuple[str | None, bool]:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        if value := request.headers.get(TOKEN_HEADER):
            return value, False
        if query := request.query_params.get(TOKEN_QUERY):
            return query, True
        cookie = request.cookies.get(TOKEN_COOKIE)
        return (unquote(cookie) if cookie else None), False

    async def _caller(self, presented: str | None) -> Caller | None:
        if presented and self.token is not None and hmac.compare_digest(presented.encode(), self.token):
            return OWNER
        if presented and self.personal is not None and len(presented) <= 256:
            import anyio.to_thread

            name = await anyio.to_thread.run_sync(self.personal, presented)  # a database look-up
            if name is not None:
                return Caller("annotator", name)
        return OWNER if self.token is None else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented, from_query = self._presented(Request(scope))
        caller = await self._caller(presented)
        if caller is None:
            response = JSONResponse(
                {"detail": "missing or wrong token: send it as 'Authorization: Bearer T', 'X-RSIR-Token' or ?token="},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER] = caller
        if not from_query or (caller is OWNER and self.token is None):  # an open server sets no cookie
            await self.app(scope, receive, send)
            return

        cookie = f"{TOKEN_COOKIE}={quote(presented or '', safe='')}; Path=/; HttpOnly; SameSite=Strict"

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


# ---------------------------------------------------------------- logs

_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']*", re.IGNORECASE)


def mask_tokens(text: str) -> str:
    """``/?token=abc&x=1`` -> ``/?token=***&x=1``."""
    return _TOKEN_IN_URL.sub(r"\1***", text)


class TokenMaskFilter(logging.Filter):
    """Masks ``?token=`` in a record's message and arguments (uvicorn's access log passes the URL as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_tokens(a) if isinstance(a, str) else a for a in record.args)
        return True


def uvicorn_log_config() -> dict:
    """uvicorn's own logging configuration with :class:`TokenMaskFilter` on its handlers. A dict, not a
    filter added here, so ``--workers`` processes (which configure logging themselves) mask too."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_tokens"] = {"()": "rsir.app.auth.TokenMaskFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("mask_tokens")
    return config
