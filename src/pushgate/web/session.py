"""Browser sessions: a signed cookie naming the token that signed in, and CSRF tokens.

The session cookie holds `{"sid", "sub", "exp", "csrf"}` signed with HMAC-SHA256 under a key
derived from the secret key (`SecretBox.derived`); while a key rotation runs, cookies signed
under the key being replaced are accepted too, so nobody is signed out half-way; once it has
ended, they are not (docs/operations.md#rotating-the-secret-key). It is signed, not encrypted,
so it names a token by id (or, for PUSHGATE_ADMIN_TOKEN, by a keyed fingerprint), never by
value. `sid` is a random session id that the server keeps (`store/sessions.py`, as a hash)
from sign-in until sign-out: a cookie whose session ended is refused even before it expires.
Every request also re-checks that the token still exists, so revoking a token ends its sessions.

CSRF: each session carries a random token; forms send it in a `csrf` field and `fetch()` calls
in the `X-CSRF-Token` header. The sign-in form, which has no session yet, is protected by a
double-submit nonce held in a short-lived signed cookie of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from pushgate.api.deps import RuntimeDep
from pushgate.domain import Role
from pushgate.errors import Forbidden, Unauthorized
from pushgate.runtime import ADMIN_TOKEN_ID, Runtime

SESSION_COOKIE = "pushgate_session"
LOGIN_COOKIE = "pushgate_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# A working day: long enough not to interrupt work, short enough that a forgotten tab expires.
SESSION_TTL_MS = 8 * 3600 * 1000
# How long a sign-in form stays usable after it was shown.
LOGIN_TTL_MS = 3600 * 1000
_PURPOSE = b"pushgate web sessions v1"
_ADMIN = "admin:"
_TOKEN = "token:"


class Signer:
    """Signs small JSON payloads into cookie values and checks them back: signed with the
    first key, accepted under any of `keys`."""

    def __init__(self, *keys: bytes) -> None:
        self._keys = keys

    @staticmethod
    def _mac(key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha256).digest()

    def sign(self, payload: dict[str, Any]) -> str:
        """`base64url(json).base64url(hmac)`."""
        data = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return data + "." + _b64(self._mac(self._keys[0], data.encode()))

    def unsign(self, value: str) -> dict[str, Any] | None:
        """The payload of a value `sign` made with one of these keys; None when anything is off."""
        data, _, mac = value.partition(".")
        try:
            given = _unb64(mac)
            if not any(
                hmac.compare_digest(given, self._mac(key, data.encode())) for key in self._keys
            ):
                return None
            payload = json.loads(_unb64(data))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def fingerprint(self, value: str) -> str:
        """A keyed digest that identifies `value` without revealing it."""
        return self._fingerprint(self._keys[0], value)

    def fingerprints(self, value: str) -> list[str]:
        """`fingerprint(value)` under each key (a session may predate a rotation)."""
        return [self._fingerprint(key, value) for key in self._keys]

    def _fingerprint(self, key: bytes, value: str) -> str:
        return self._mac(key, value.encode()).hex()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in: a subject the session can re-check, a display name and a role."""

    subject: str
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser."""

    identity: Identity
    csrf: str
    expires: int
    id: str

    @property
    def can_write(self) -> bool:
        """Whether this session may change configurations (writer and admin tokens)."""
        return self.identity.role is not Role.READER

    @property
    def is_admin(self) -> bool:
        """Whether this session may see tokens and event sources (admin tokens)."""
        return self.identity.role is Role.ADMIN


def signer(request: Request) -> Signer:
    """The signer of this app, built from the keys in force (again when they change)."""
    state = request.app.state
    runtime: Runtime = state.runtime
    keyring = runtime.services.box.keyring
    keyring.current()  # notices key files that changed
    generation = keyring.generation
    found: tuple[int, Signer] | None = getattr(state, "web_signer", None)
    if found is None or found[0] != generation:
        found = state.web_signer = (generation, Signer(*runtime.services.box.derived(_PURPOSE)))
    return found[1]


async def identify(rt: Runtime, value: str, sign: Signer, client: str) -> Identity | None:
    """The identity of an access token value, as the API would accept it; None if unknown.
    Failed attempts from `client` are slowed down (`RateLimited`), as the API's are."""
    token = await rt.sign_in(value, client)
    if token is None:
        return None
    if token.id == ADMIN_TOKEN_ID:
        return Identity(_ADMIN + sign.fingerprint(value), token.name, token.role)
    return Identity(_TOKEN + token.id, token.name, token.role)


async def _recheck(rt: Runtime, subject: str, sign: Signer) -> Identity | None:
    """The identity behind a session's subject, if its token still exists."""
    if subject.startswith(_ADMIN):
        admin = rt.settings.admin_token
        if admin is None:
            return None
        fingerprints = sign.fingerprints(admin.get_secret_value())
        if not any(hmac.compare_digest(subject, _ADMIN + print_) for print_ in fingerprints):
            return None
        return Identity(subject, "PUSHGATE_ADMIN_TOKEN", Role.ADMIN)
    token = await rt.store.tokens.get(subject.removeprefix(_TOKEN))
    return Identity(subject, token.name, token.role) if token is not None else None


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


async def start_session(
    request: Request, response: Response, rt: Runtime, identity: Identity
) -> None:
    """Open a session for `identity` on the server, set its cookie, drop the sign-in nonce."""
    now = rt.clock()
    session_id, expires = _nonce(), now + SESSION_TTL_MS
    await rt.store.sessions.start(session_id, subject=identity.subject, now=now, expires_at=expires)
    payload = {"sid": session_id, "sub": identity.subject, "exp": expires, "csrf": _nonce()}
    _cookie(
        response, request, SESSION_COOKIE, signer(request).sign(payload), SESSION_TTL_MS // 1000
    )
    response.delete_cookie(LOGIN_COOKIE, path="/")


async def end_session(response: Response, rt: Runtime, session: Session | None) -> None:
    """End `session` on the server (its cookie no longer works anywhere) and remove the cookie."""
    if session is not None:
        await rt.store.sessions.end(session.id)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


async def current_session(request: Request, rt: RuntimeDep) -> Session | None:
    """The valid session of this request, or None (no cookie, bad signature, expired, revoked)."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    sign = signer(request)
    payload = sign.unsign(value)
    if payload is None:
        return None
    subject, expires, csrf = payload.get("sub"), payload.get("exp"), payload.get("csrf")
    session_id = payload.get("sid")
    if not (isinstance(subject, str) and isinstance(expires, int) and isinstance(csrf, str)):
        return None
    if not isinstance(session_id, str) or expires <= rt.clock():
        return None
    if await rt.store.sessions.subject(session_id, now=rt.clock()) != subject:
        return None  # signed out, or a session this server never opened
    identity = await _recheck(rt, subject, sign)
    return None if identity is None else Session(identity, csrf, expires, session_id)


async def require_session(request: Request, rt: RuntimeDep) -> Session:
    """A dependency: the session, or Unauthorized (which sends browsers to /login)."""
    session = await current_session(request, rt)
    if session is None:
        raise Unauthorized("sign in to continue")
    return session


async def check_csrf(request: Request, session: Session) -> None:
    """Forbidden unless the request carries the session's CSRF token (header or form field)."""
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        submitted = field if isinstance(field, str) else None
    if submitted is None or not hmac.compare_digest(submitted.encode(), session.csrf.encode()):
        raise Forbidden("the form is out of date or did not come from this site: reload the page")


async def require_writer(
    request: Request, session: Annotated[Session, Depends(require_session)]
) -> Session:
    """A dependency for changes: a session whose CSRF token matches and whose role may write."""
    await check_csrf(request, session)
    if not session.can_write:
        raise Forbidden(
            f"your token “{session.identity.name}” is a reader token: it can look, not change"
        )
    return session


SessionDep = Annotated[Session, Depends(require_session)]
WriterDep = Annotated[Session, Depends(require_writer)]


# --- the sign-in form's nonce ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginNonce:
    """The nonce a sign-in form must echo, and the cookie to set when it is new."""

    value: str
    cookie: str | None

    def remember(self, request: Request, response: Response) -> None:
        """Set the nonce's cookie on the response that shows the form (if it is new)."""
        if self.cookie is not None:
            _cookie(response, request, LOGIN_COOKIE, self.cookie, LOGIN_TTL_MS // 1000)


def login_nonce(request: Request, now: int) -> LoginNonce:
    """The sign-in form's nonce; reuses a still-valid one (so several open tabs all work)."""
    sign = signer(request)
    payload = sign.unsign(request.cookies.get(LOGIN_COOKIE, ""))
    if payload and isinstance(payload.get("n"), str) and payload.get("exp", 0) > now:
        return LoginNonce(str(payload["n"]), None)
    nonce = _nonce()
    return LoginNonce(nonce, sign.sign({"n": nonce, "exp": now + LOGIN_TTL_MS}))


def check_login_nonce(request: Request, submitted: str, now: int) -> bool:
    """Whether the sign-in form's nonce matches its cookie and has not expired."""
    payload = signer(request).unsign(request.cookies.get(LOGIN_COOKIE, ""))
    if not payload or not isinstance(payload.get("n"), str) or payload.get("exp", 0) <= now:
        return False
    return hmac.compare_digest(submitted.encode(), str(payload["n"]).encode())


def _nonce() -> str:
    return secrets.token_urlsafe(24)
