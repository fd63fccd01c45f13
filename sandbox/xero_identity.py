"""Xero's login and identity hosts: the consent page, OAuth 2 tokens, connections, revocation."""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, request

from sandbox.xero_books import SandboxOrg
from sandbox.xero_wire import JSON, new_id, problem

DEFAULT_SCOPE = (
    "offline_access accounting.invoices accounting.payments accounting.banktransactions "
    "accounting.contacts accounting.settings"
)
CODE_TTL = timedelta(minutes=5)
REFRESH_TOKEN_TTL = timedelta(days=60)
REFRESH_GRACE = timedelta(minutes=30)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_like(claims: JSON) -> str:
    """Shaped like Xero's RS256 JWTs (three base64url parts); only the sandbox can read it."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"


@dataclass
class _Grant:
    """One consent: who agreed, to which scopes, for which organisations."""

    client_id: str
    scopes: tuple[str, ...]
    tenant_ids: tuple[str, ...]
    auth_event_id: str = field(default_factory=new_id)
    user_id: str = field(default_factory=new_id)


@dataclass
class _RefreshToken:
    grant: _Grant
    issued_at: datetime
    used_at: datetime | None = None
    successor: str | None = None


@dataclass
class _AccessToken:
    grant: _Grant
    expires_at: datetime


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    expires_at: datetime


@dataclass
class _Connection:
    id: str
    tenant_id: str
    auth_event_id: str
    created: datetime
    updated: datetime


class Identity:
    """The OAuth side of the sandbox; the API gate asks it who a Bearer token is."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        tenants: list[SandboxOrg],
        access_token_ttl: int,
        refresh_grace: timedelta,
        clock: Callable[[], datetime],
        lock: threading.RLock,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenants = tenants
        self.access_token_ttl = access_token_ttl
        # Xero lets the previous refresh token be used again for 30 minutes after rotation, so
        # a client that lost the response can recover; timedelta(0) makes rotation strict.
        self.refresh_grace = refresh_grace
        self._clock = clock
        self._lock = lock
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._connections: dict[str, _Connection] = {}
        self.issued_refresh_tokens: list[str] = []

    def add_routes(self, app: Flask) -> None:
        add = app.add_url_rule
        add("/identity/connect/authorize", view_func=self._authorize, methods=["GET", "POST"])
        add("/connect/token", view_func=self._token, methods=["POST"])
        add("/connect/revocation", view_func=self._revoke, methods=["POST"])
        add("/connections", view_func=self._list_connections, methods=["GET"])
        add("/connections/<connection_id>", view_func=self._delete_connection, methods=["DELETE"])

    def connected(self, tenant_id: str) -> bool:
        with self._lock:
            return tenant_id in self._connections

    def authorize_offline(self, scope: str, tenant_ids: Sequence[str]) -> str:
        """A refresh token as if a user had consented, for tests not about the consent page."""
        with self._lock:
            grant = self._consent(self.client_id, scope.split(), tenant_ids)
            return self._new_refresh_token(grant)

    def disconnect(self, tenant_id: str) -> None:
        """Remove the app from an organisation, as its user can in Xero's settings."""
        with self._lock:
            self._connections.pop(tenant_id, None)

    def expire_access_tokens(self) -> None:
        """Make every issued access token stale, as 30 minutes passing would."""
        with self._lock:
            past = self._clock() - timedelta(seconds=1)
            for token in self._access_tokens.values():
                token.expires_at = past

    def _now(self) -> datetime:
        return self._clock()

    # --- login: the consent page ----------------------------------------------------------------

    def _authorize(self) -> Response:
        source = request.args if request.method == "GET" else request.form
        client_id = source.get("client_id", "")
        redirect_uri = source.get("redirect_uri", "")
        scope = source.get("scope", "")
        state = source.get("state", "")
        if client_id != self.client_id:
            return self._error_page("unauthorized_client", "Unknown client or client not enabled")
        if request.method == "GET" and request.args.get("response_type") != "code":
            return self._error_page("unsupported_response_type", "response_type must be code")
        target = urlsplit(redirect_uri)
        if target.scheme not in ("http", "https") or not target.netloc:
            return self._error_page("invalid_request", "Invalid redirect_uri")
        if not scope.split():
            return self._error_page("invalid_scope", "No scope was requested")
        if request.method == "GET":
            return self._consent_page(client_id, redirect_uri, scope, state)
        if request.form.get("action") != "allow":
            return self._redirect(redirect_uri, {"error": "access_denied", "state": state})
        chosen = request.form.getlist("tenant") or [self.tenants[0].tenant_id]
        known = {org.tenant_id for org in self.tenants}
        if not set(chosen) <= known:
            return self._error_page("invalid_request", "Unknown organisation")
        with self._lock:
            grant = self._consent(client_id, scope.split(), chosen)
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(grant, redirect_uri, self._now() + CODE_TTL)
        return self._redirect(
            redirect_uri, {"code": code, "scope": scope, "state": state, "session_state": new_id()}
        )

    def _consent_page(self, client_id: str, redirect_uri: str, scope: str, state: str) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in (
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", scope),
                ("state", state),
            )
        )
        options = "".join(
            f'<option value="{org.tenant_id}"{" selected" if i == 0 else ""}>'
            f"{html.escape(org.name)}</option>"
            for i, org in enumerate(self.tenants)
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in scope.split())
        page = (
            "<!doctype html><html><head><title>Xero | Authorise app</title></head><body>"
            "<h1>Amazon Xero Bot wants access to your Xero organisation</h1>"
            f"<ul>{scopes}</ul>"
            f'<form method="post" action="/identity/connect/authorize">{hidden}'
            f'<label>Organisation <select name="tenant">{options}</select></label>'
            '<button type="submit" name="action" value="allow">Allow access</button>'
            '<button type="submit" name="action" value="deny">Cancel</button>'
            "</form></body></html>"
        )
        return Response(page, mimetype="text/html")

    @staticmethod
    def _error_page(error: str, description: str) -> Response:
        page = (
            "<!doctype html><html><head><title>Xero | Error</title></head><body>"
            f"<h1>Sorry, something went wrong</h1><p>Error: {html.escape(error)}</p>"
            f"<p>Error details: {html.escape(description)}</p></body></html>"
        )
        return Response(page, status=400, mimetype="text/html")

    @staticmethod
    def _redirect(uri: str, params: dict[str, str]) -> Response:
        separator = "&" if urlsplit(uri).query else "?"
        return Response(status=302, headers={"Location": f"{uri}{separator}{urlencode(params)}"})

    def _consent(self, client_id: str, scopes: Sequence[str], tenant_ids: Sequence[str]) -> _Grant:
        grant = _Grant(client_id, tuple(scopes), tuple(tenant_ids))
        now = self._now()
        for tenant_id in tenant_ids:
            existing = self._connections.get(tenant_id)
            if existing is None:
                self._connections[tenant_id] = _Connection(
                    new_id(), tenant_id, grant.auth_event_id, now, now
                )
            else:
                existing.auth_event_id = grant.auth_event_id
                existing.updated = now
        return grant

    # --- identity: tokens and connections -----------------------------------------------------

    def _token(self) -> Response:
        client_id, client_secret = self._client_credentials()
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._oauth_error("invalid_client")
        grant_type = request.form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                code = self._codes.pop(request.form.get("code", ""), None)
                if (
                    code is None
                    or code.expires_at < self._now()
                    or code.redirect_uri != request.form.get("redirect_uri")
                    or code.grant.client_id != client_id
                ):
                    return self._oauth_error("invalid_grant")
                return self._token_response(code.grant, None)
            if grant_type == "refresh_token":
                return self._refresh(request.form.get("refresh_token", ""), client_id)
        return self._oauth_error("unsupported_grant_type")

    def _revoke(self) -> Response:
        """Xero's revocation endpoint (RFC 7009): the refresh token given, every token rotated
        from the same consent, and that consent's connections go. Access tokens already issued
        are JWTs Xero cannot recall; with the connections gone they open nothing."""
        client_id, client_secret = self._client_credentials()
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._oauth_error("invalid_client")
        token = request.form.get("token", "")
        if not token:
            return self._oauth_error("invalid_request")
        with self._lock:
            record = self._refresh_tokens.get(token)
            # An unknown token is answered 200 all the same, as RFC 7009 asks.
            if record is not None and record.grant.client_id == client_id:
                grant = record.grant
                for value, refresh in list(self._refresh_tokens.items()):
                    if refresh.grant is grant:
                        del self._refresh_tokens[value]
                for tenant_id in grant.tenant_ids:
                    self._connections.pop(tenant_id, None)
        return Response(status=200)

    def _client_credentials(self) -> tuple[str, str]:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username or "", auth.password or ""
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def _refresh(self, token: str, client_id: str) -> Response:
        record = self._refresh_tokens.get(token)
        now = self._now()
        if record is None or record.grant.client_id != client_id:
            return self._oauth_error("invalid_grant")
        if record.used_at is not None:
            successor = self._refresh_tokens.get(record.successor or "")
            if (
                now - record.used_at > self.refresh_grace
                or successor is None
                or successor.used_at is not None
            ):
                return self._oauth_error("invalid_grant")
            # Within the grace the caller gets the token it missed, not a second lineage.
            return self._token_response(record.grant, record.successor)
        if now - record.issued_at > REFRESH_TOKEN_TTL:
            return self._oauth_error("invalid_grant")
        if not set(record.grant.tenant_ids) & set(self._connections):
            return self._oauth_error("invalid_grant")
        record.used_at = now
        response = self._token_response(record.grant, None)
        record.successor = response.get_json().get("refresh_token")
        return response

    def _new_refresh_token(self, grant: _Grant) -> str:
        token = secrets.token_hex(32)
        self._refresh_tokens[token] = _RefreshToken(grant, self._now())
        self.issued_refresh_tokens.append(token)
        return token

    def _token_response(self, grant: _Grant, refresh_token: str | None) -> Response:
        now = self._now()
        expires_at = now + timedelta(seconds=self.access_token_ttl)
        claims = {
            "nbf": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources",
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "xero_userid": grant.user_id,
            "authentication_event_id": grant.auth_event_id,
            "jti": new_id(),
            "scope": list(grant.scopes),
        }
        access_token = _jwt_like(claims)
        self._access_tokens[access_token] = _AccessToken(grant, expires_at)
        body: JSON = {
            "access_token": access_token,
            "expires_in": self.access_token_ttl,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes:
            body["id_token"] = _jwt_like({"sub": grant.user_id, "aud": grant.client_id})
        if "offline_access" in grant.scopes:
            body["refresh_token"] = refresh_token or self._new_refresh_token(grant)
        return Response(json.dumps(body), mimetype="application/json")

    @staticmethod
    def _oauth_error(error: str) -> Response:
        return Response(json.dumps({"error": error}), status=400, mimetype="application/json")

    def bearer(self) -> _AccessToken | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        return self._access_tokens.get(header.removeprefix("Bearer ").strip())

    def _list_connections(self) -> Response:
        token = self.bearer()
        if token is None or token.expires_at < self._now():
            return problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        wanted_event = request.args.get("authEventId")
        names = {org.tenant_id: org.name for org in self.tenants}
        with self._lock:
            rows = [
                {
                    "id": c.id,
                    "authEventId": c.auth_event_id,
                    "tenantId": c.tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": names[c.tenant_id],
                    "createdDateUtc": c.created.strftime("%Y-%m-%dT%H:%M:%S.%f0"),
                    "updatedDateUtc": c.updated.strftime("%Y-%m-%dT%H:%M:%S.%f0"),
                }
                for c in sorted(self._connections.values(), key=lambda c: c.created)
                # Like Xero: every organisation connected to the app, not only this consent's.
                if wanted_event in (None, c.auth_event_id)
            ]
        return Response(json.dumps(rows), mimetype="application/json")

    def _delete_connection(self, connection_id: str) -> Response:
        token = self.bearer()
        if token is None or token.expires_at < self._now():
            return problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        with self._lock:
            for tenant_id, connection in list(self._connections.items()):
                if connection.id == connection_id and tenant_id in token.grant.tenant_ids:
                    del self._connections[tenant_id]
                    return Response(status=204)
        return Response(status=404)
