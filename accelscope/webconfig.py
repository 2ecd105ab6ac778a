"""Web configuration compatible with Prometheus' exporter-toolkit.

Reads the YAML file that every official Prometheus exporter accepts through
``--web.config.file`` and turns it into what an aiohttp server needs:

* :meth:`WebConfig.ssl_context` - a server ``ssl.SSLContext`` (TLS 1.2 or
  newer, optional client-certificate verification), or ``None`` when the file
  configures no TLS;
* :meth:`WebConfig.middleware` - an aiohttp middleware that enforces bcrypt
  basic auth and ``client_allowed_sans`` and adds the configured response
  headers, or ``None`` when there is nothing to enforce.

The parser is strict like exporter-toolkit: an unknown key is an error, and
every error is a :class:`WebConfigError` that names the file, the key and what
was expected.  See ``docs/web-config.md`` for the supported subset.

Hash a password for ``basic_auth_users`` with::

    python -m accelscope.webconfig hash < password.txt
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import getpass
import hashlib
import ipaddress
import logging
import re
import secrets
import ssl
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web

__all__ = [
    "WebConfig",
    "WebConfigError",
    "TLSServerConfig",
    "load_web_config",
    "make_bcrypt_hash",
    "main",
]

log = logging.getLogger(__name__)

#: Realm sent in ``WWW-Authenticate`` on a 401.
REALM = "accelscope"
#: How many successful basic-auth checks are remembered (exporter-toolkit: 100).
AUTH_CACHE_SIZE = 100
#: Default bcrypt cost for :func:`make_bcrypt_hash` (``htpasswd -nBC 10``).
DEFAULT_BCRYPT_COST = 10
#: bcrypt only looks at the first 72 bytes of a password.
_BCRYPT_MAX_PASSWORD = 72

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

# -- schema -----------------------------------------------------------------

_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
             "max_version", "cipher_suites", "prefer_server_cipher_suites", "client_allowed_sans")
_HTTP_KEYS = ("http2", "headers")

# Keys exporter-toolkit knows but accelscope does not implement.  They get a
# clearer error than "unknown key" (empty values are tolerated, so a chart
# that renders them blank still works).
_UNSUPPORTED_TOP = {
    "rate_limit": "rate limiting is not implemented; put a proxy in front if you need it",
    "ip_socket_config": "IP socket options (TTL, DSCP) are not implemented",
}
_UNSUPPORTED_TLS = {
    "cert": "inline PEM is not supported; write the certificate to a file and use cert_file",
    "key": "inline PEM is not supported; write the key to a file and use key_file",
    "client_ca": "inline PEM is not supported; write the CA bundle to a file and use client_ca_file",
    "curve_preferences": "Python's ssl module cannot set a list of curves; remove the key "
                         "(OpenSSL's defaults, X25519 and the NIST curves, are used)",
}

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_MIN_ALLOWED_TLS = ssl.TLSVersion.TLSv1_2

# client_auth_type -> (verify mode, needs client_ca_file)
_CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    # Go asks for a certificate but neither requires nor verifies it, so it
    # grants no access control; Python cannot ask without verifying, so the
    # certificate is simply not requested.
    "RequestClientCert": (ssl.CERT_NONE, False),
    # Go requires a certificate without verifying it; Python cannot, so the
    # certificate must also verify against client_ca_file (stricter).
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
_CLIENT_AUTH_ALIASES = {"RequireClientCert": "RequireAnyClientCert"}  # exporter-toolkit legacy name

# Go crypto/tls cipher-suite names (tls.CipherSuites()) -> OpenSSL names.
_TLS12_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    # Older Go aliases of the two above.
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are always enabled (Go ignores them in cipher_suites too).
_TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

# Response headers exporter-toolkit lets a config set, with the allowed
# values where they are an enumeration (names and values are case-sensitive
# there, so they are here).
_ALLOWED_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

_BCRYPT_HASH_RE = re.compile(r"^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$")


class WebConfigError(ValueError):
    """The web-config file is unreadable or invalid.

    The message names the file, the key and what was expected.
    ``source`` and ``key`` carry the first two separately (either may be None).
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        parts = [p for p in (source, key) if p]
        super().__init__(": ".join([*parts, message]))


# -- model ------------------------------------------------------------------


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config``, with paths already resolved."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebConfig:
    """A parsed web-config file.  Build one with :func:`load_web_config`."""

    source: str = "<web config>"
    tls: TLSServerConfig | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    http2: bool = True
    basic_auth_users: Mapping[str, str] = field(default_factory=dict)
    #: Human-readable notes about accepted-but-ignored settings.
    notes: tuple[str, ...] = ()

    # -- construction --------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Any, *, base_dir: str | Path = ".",
                     source: str = "<web config>") -> WebConfig:
        """Validate already-parsed YAML ``data``; relative paths join ``base_dir``.

        Checks the schema only; :func:`load_web_config` also loads the
        certificates once to catch unreadable or mismatched files early.
        """
        return _parse(data, Path(base_dir), source)

    # -- TLS -----------------------------------------------------------------

    @property
    def tls_enabled(self) -> bool:
        return self.tls is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh server context built from the files on disk, or None without TLS.

        Each call re-reads the certificate, key and CA files, so calling it
        again after a rotation picks the new ones up.  Raises WebConfigError
        when a file is missing, unreadable or does not match.
        """
        if self.tls is None:
            return None
        return _build_ssl_context(self.tls, self.source)

    # -- HTTP ----------------------------------------------------------------

    def middleware(self, exempt: Iterable[str] = ()) -> Middleware | None:
        """The aiohttp middleware enforcing this config, or None if there is nothing to do.

        It checks ``client_allowed_sans`` (403 when the verified client
        certificate carries none of them), then basic auth (401 with
        ``WWW-Authenticate``), and adds the configured headers to every
        response it sees, error responses included.  Requests whose path is
        exactly one of ``exempt`` (e.g. ``"/healthz"``) skip both checks but
        still get the headers.
        """
        sans = self.tls.client_allowed_sans if self.tls else ()
        if not (self.basic_auth_users or self.headers or sans):
            return None
        auth = _BasicAuth(self.basic_auth_users) if self.basic_auth_users else None
        return _make_middleware(auth, dict(self.headers), sans, frozenset(exempt))


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate an exporter-toolkit web-config file.

    Relative paths inside the file resolve against the file's directory.
    When TLS is configured the certificate, key and CA are loaded once here,
    so a bad file fails at startup rather than on the first connection.
    Raises WebConfigError.
    """
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WebConfigError("web config file does not exist", source=source) from None
    except IsADirectoryError:
        raise WebConfigError("is a directory, expected a YAML web config file", source=source) from None
    except UnicodeDecodeError as exc:
        raise WebConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=source) from None
    except OSError as exc:
        raise WebConfigError(f"cannot read web config file: {exc.strerror or exc}", source=source) from None
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # SafeLoader + duplicate-key check
    except yaml.YAMLError as exc:
        raise WebConfigError(f"invalid YAML: {exc}", source=source) from None
    config = _parse(data, p.parent, source)
    config.ssl_context()  # validate the TLS files now
    for note in config.notes:
        log.info("web config %s: %s", source, note)
    return config


# -- parsing ----------------------------------------------------------------


class _StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (Go's UnmarshalStrict does)."""


def _construct_mapping_no_dups(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key; the default constructor reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_dups)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


class _Ctx:
    """Error helper bound to a file name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str | None, message: str) -> WebConfigError:
        return WebConfigError(message, source=self.source, key=key)

    def mapping(self, value: Any, key: str | None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {_type_name(value)}")
        return value

    def check_keys(self, data: dict, prefix: str, known: Iterable[str], unsupported: Mapping[str, str]) -> None:
        known = tuple(known)
        for key in data:
            if not isinstance(key, str):
                raise self.error(prefix or None, f"keys must be strings, got {key!r}")
            dotted = f"{prefix}.{key}" if prefix else key
            if key in known:
                continue
            if key in unsupported:
                if data[key] in (None, "", [], {}):
                    continue  # empty: harmless, tolerated
                raise self.error(dotted, f"exporter-toolkit option not supported by accelscope: {unsupported[key]}")
            raise self.error(dotted, f"unknown key (expected one of: {', '.join(known)})")

    def string(self, data: dict, key: str, dotted: str) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(dotted, f"expected a string, got {_type_name(value)}")
        return value

    def boolean(self, data: dict, key: str, dotted: str, default: bool) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(dotted, f"expected true or false, got {value!r}")
        return value

    def string_list(self, data: dict, key: str, dotted: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.error(dotted, f"expected a list of strings, got {_type_name(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{dotted}[{i}]", f"expected a non-empty string, got {item!r}")
        return tuple(value)


def _join_dir(base_dir: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def _parse(data: Any, base_dir: Path, source: str) -> WebConfig:
    ctx = _Ctx(source)
    top = ctx.mapping(data, None)
    ctx.check_keys(top, "", _TOP_KEYS, _UNSUPPORTED_TOP)
    notes: list[str] = []

    tls = _parse_tls(ctx, ctx.mapping(top.get("tls_server_config"), "tls_server_config"), base_dir, notes)

    http = ctx.mapping(top.get("http_server_config"), "http_server_config")
    ctx.check_keys(http, "http_server_config", _HTTP_KEYS, {})
    http2 = ctx.boolean(http, "http2", "http_server_config.http2", True)
    if "http2" in http:
        notes.append("http_server_config.http2 is ignored: accelscope's aiohttp server speaks HTTP/1.1 only")
    headers = _parse_headers(ctx, ctx.mapping(http.get("headers"), "http_server_config.headers"))

    users = _parse_users(ctx, ctx.mapping(top.get("basic_auth_users"), "basic_auth_users"))
    return WebConfig(source=source, tls=tls, headers=headers, http2=http2,
                     basic_auth_users=users, notes=tuple(notes))


def _parse_version(ctx: _Ctx, data: dict, key: str, default: str) -> str:
    dotted = f"tls_server_config.{key}"
    value = ctx.string(data, key, dotted) or default
    if value not in _TLS_VERSIONS:
        raise ctx.error(dotted, f"unknown TLS version {value!r} (expected TLS12 or TLS13)")
    if _TLS_VERSIONS[value] < _MIN_ALLOWED_TLS:
        raise ctx.error(dotted, f"{value} is refused: accelscope requires TLS 1.2 or newer (use TLS12 or TLS13)")
    return value


def _parse_tls(ctx: _Ctx, data: dict, base_dir: Path, notes: list[str]) -> TLSServerConfig | None:
    p = "tls_server_config"
    ctx.check_keys(data, p, _TLS_KEYS, _UNSUPPORTED_TLS)
    cert = ctx.string(data, "cert_file", f"{p}.cert_file")
    key = ctx.string(data, "key_file", f"{p}.key_file")
    ca = ctx.string(data, "client_ca_file", f"{p}.client_ca_file")
    auth = ctx.string(data, "client_auth_type", f"{p}.client_auth_type")
    # Like exporter-toolkit: no cert, key, CA or client auth means plain HTTP.
    if cert is None and key is None and ca is None and auth is None:
        if any(data.get(k) not in (None, "", []) for k in data):
            notes.append("tls_server_config has settings but no cert_file/key_file: TLS is off and "
                         "those settings are ignored")
        return None
    if cert is None:
        raise ctx.error(f"{p}.cert_file", "missing: TLS needs both cert_file and key_file")
    if key is None:
        raise ctx.error(f"{p}.key_file", "missing: TLS needs both cert_file and key_file")

    auth = _CLIENT_AUTH_ALIASES.get(auth or "NoClientCert", auth or "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise ctx.error(f"{p}.client_auth_type", f"unknown value {auth!r} (expected one of: {', '.join(_CLIENT_AUTH)})")
    verify_mode, needs_ca = _CLIENT_AUTH[auth]
    if ca is not None and auth == "NoClientCert":
        raise ctx.error(f"{p}.client_ca_file",
                        "client CA configured without a client auth policy: set client_auth_type "
                        "(RequireAndVerifyClientCert or VerifyClientCertIfGiven) or remove client_ca_file")
    if needs_ca and ca is None:
        raise ctx.error(f"{p}.client_auth_type",
                        f"{auth} needs client_ca_file, the CA bundle that signs the client certificates")
    if auth == "RequestClientCert":
        notes.append("tls_server_config.client_auth_type RequestClientCert: client certificates are not "
                     "requested (Go would request but not check them; neither authenticates anyone)")
    elif auth == "RequireAnyClientCert":
        notes.append("tls_server_config.client_auth_type RequireAnyClientCert: client certificates must also "
                     "verify against client_ca_file (Python's ssl cannot require one without verifying it)")

    min_version = _parse_version(ctx, data, "min_version", "TLS12")
    max_version = _parse_version(ctx, data, "max_version", "TLS13")
    if _TLS_VERSIONS[max_version] < _TLS_VERSIONS[min_version]:
        raise ctx.error(f"{p}.max_version", f"{max_version} is below min_version {min_version}")

    ciphers = ctx.string_list(data, "cipher_suites", f"{p}.cipher_suites")
    for i, name in enumerate(ciphers):
        if name not in _TLS12_CIPHERS and name not in _TLS13_CIPHERS:
            raise ctx.error(f"{p}.cipher_suites[{i}]",
                            f"unknown or unsupported cipher suite {name!r} (supported, Go names: "
                            f"{', '.join(sorted(_TLS12_CIPHERS))}; TLS 1.3 suites are always on)")
    if ciphers and not any(name in _TLS12_CIPHERS for name in ciphers):
        raise ctx.error(f"{p}.cipher_suites",
                        "lists only TLS 1.3 suites, which cannot be restricted; add TLS 1.2 suites or remove the key")
    if ciphers and min_version == "TLS13":
        notes.append("tls_server_config.cipher_suites has no effect with min_version TLS13")

    sans = ctx.string_list(data, "client_allowed_sans", f"{p}.client_allowed_sans")
    if sans and verify_mode == ssl.CERT_NONE:
        raise ctx.error(f"{p}.client_allowed_sans",
                        "needs verified client certificates: set client_auth_type to RequireAndVerifyClientCert "
                        "(or VerifyClientCertIfGiven) and client_ca_file")

    return TLSServerConfig(
        cert_file=_join_dir(base_dir, cert),  # type: ignore[arg-type]
        key_file=_join_dir(base_dir, key),  # type: ignore[arg-type]
        client_auth_type=auth,
        client_ca_file=_join_dir(base_dir, ca),
        min_version=min_version,
        max_version=max_version,
        cipher_suites=ciphers,
        prefer_server_cipher_suites=ctx.boolean(data, "prefer_server_cipher_suites",
                                                f"{p}.prefer_server_cipher_suites", True),
        client_allowed_sans=sans,
    )


def _parse_headers(ctx: _Ctx, data: dict) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in data.items():
        dotted = f"http_server_config.headers.{name}"
        if name not in _ALLOWED_HEADERS:
            raise ctx.error(dotted, f"this header cannot be configured (allowed, case-sensitive: "
                                    f"{', '.join(_ALLOWED_HEADERS)})")
        if not isinstance(value, str):
            raise ctx.error(dotted, f"expected a string, got {_type_name(value)}")
        if "\r" in value or "\n" in value:
            raise ctx.error(dotted, "value must not contain line breaks")
        allowed = _ALLOWED_HEADERS[name]
        if allowed and value not in allowed:
            raise ctx.error(dotted, f"expected one of {', '.join(allowed)}, got {value!r}")
        headers[name] = value
    return headers


def _parse_users(ctx: _Ctx, data: dict) -> dict[str, str]:
    users: dict[str, str] = {}
    for user, hashed in data.items():
        if not isinstance(user, str) or not user:
            raise ctx.error("basic_auth_users", f"user name {user!r} must be a non-empty string (quote it in YAML)")
        dotted = f"basic_auth_users.{user}"
        if ":" in user:
            raise ctx.error(dotted, "user names cannot contain ':' (basic auth splits on it)")
        if not isinstance(hashed, str):
            raise ctx.error(dotted, f"expected a bcrypt hash string, got {_type_name(hashed)}")
        match = _BCRYPT_HASH_RE.match(hashed.strip())
        if not match or not 4 <= int(match.group(1)) <= 31:
            # Never echo the value: it may be a plaintext password by mistake.
            raise ctx.error(dotted, "not a bcrypt hash (expected e.g. $2y$10$ followed by 53 characters); "
                                    "create one with: python -m accelscope.webconfig hash")
        users[user] = hashed.strip()
    return users


# -- TLS --------------------------------------------------------------------


def _refuse_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal.
    raise WebConfigError("encrypted private key")


def _check_file(path: Path, key: str, source: str) -> None:
    if not path.exists():
        raise WebConfigError(f"{path} does not exist", source=source, key=key)
    if not path.is_file():
        raise WebConfigError(f"{path} is not a regular file", source=source, key=key)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise WebConfigError(f"cannot read {path}: {exc.strerror or exc}", source=source, key=key) from None


def _build_ssl_context(tls: TLSServerConfig, source: str) -> ssl.SSLContext:
    p = "tls_server_config"
    _check_file(tls.cert_file, f"{p}.cert_file", source)
    _check_file(tls.key_file, f"{p}.key_file", source)
    if tls.client_ca_file is not None:
        _check_file(tls.client_ca_file, f"{p}.client_ca_file", source)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = max(_TLS_VERSIONS[tls.min_version], _MIN_ALLOWED_TLS)
    ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    openssl_names = [_TLS12_CIPHERS[n] for n in tls.cipher_suites if n in _TLS12_CIPHERS]
    if openssl_names:
        try:
            ctx.set_ciphers(":".join(dict.fromkeys(openssl_names)))
        except ssl.SSLError:
            raise WebConfigError("none of these cipher suites is available in this build of OpenSSL "
                                 f"({ssl.OPENSSL_VERSION})", source=source, key=f"{p}.cipher_suites") from None
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file, password=_refuse_passphrase)
    except WebConfigError:
        raise WebConfigError(f"{tls.key_file} is encrypted with a passphrase; accelscope needs an "
                             "unencrypted PEM key", source=source, key=f"{p}.key_file") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise WebConfigError(
            f"cannot load certificate {tls.cert_file} with key {tls.key_file}: {_ssl_reason(exc)} "
            "(expected PEM files, the key unencrypted and matching the certificate)",
            source=source, key=f"{p}.cert_file") from None
    verify_mode, _ = _CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise WebConfigError(f"cannot load CA certificates from {tls.client_ca_file}: {_ssl_reason(exc)} "
                                 "(expected one or more PEM certificates)",
                                 source=source, key=f"{p}.client_ca_file") from None
    ctx.verify_mode = verify_mode
    return ctx


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (getattr(exc, "strerror", None) or str(exc))


# -- middleware -------------------------------------------------------------


class _BasicAuth:
    """bcrypt basic auth with exporter-toolkit's three habits.

    * an unknown user is still compared against a decoy hash of the same cost,
      so the response time does not reveal which users exist;
    * comparisons run one at a time, on a dedicated worker thread, so a burst
      of requests cannot take every core nor block the event loop;
    * successful checks are remembered in a small LRU keyed by a salted
      SHA-256 of (user, configured hash, supplied password), so a scraper
      with the right password costs one bcrypt run, not one per scrape.
    """

    def __init__(self, users: Mapping[str, str], cache_size: int = AUTH_CACHE_SIZE) -> None:
        self._users = {u: h.encode("ascii") for u, h in users.items()}
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._salt = secrets.token_bytes(16)
        cost = max(int(_BCRYPT_HASH_RE.match(h.decode()).group(1)) for h in self._users.values())  # type: ignore[union-attr]
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accelscope-bcrypt")

    def _cache_key(self, user: bytes, stored: bytes, password: bytes) -> bytes:
        h = hashlib.sha256(self._salt)
        for part in (user, stored, password):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.digest()

    @staticmethod
    def _compare(password: bytes, hashed: bytes) -> bool:
        try:
            return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed)
        except ValueError:
            return False

    async def check(self, authorization: str | None) -> str | None:
        """The authenticated user name, or None."""
        creds = _parse_basic(authorization)
        if creds is None:
            return None
        user, password = creds
        stored = self._users.get(user)
        key = self._cache_key(user.encode(), stored or b"", password)
        if stored is not None and key in self._cache:
            self._cache.move_to_end(key)
            return user
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._executor, self._compare, password,
                                        stored if stored is not None else self._decoy)
        if not ok or stored is None:
            return None
        self._cache[key] = None
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return user


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, param = header.strip().partition(" ")
    if scheme.lower() != "basic" or not param:
        return None
    try:
        raw = base64.b64decode(param.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _normalise_san(value: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _peer_sans(request: web.Request) -> set[str]:
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return set()
    return {_normalise_san(value) for kind, value in cert.get("subjectAltName", ())
            if kind in ("DNS", "IP Address", "email", "URI")}


def _make_middleware(auth: _BasicAuth | None, headers: dict[str, str],
                     allowed_sans: tuple[str, ...], exempt: frozenset[str]) -> Middleware:
    allowed = {_normalise_san(s) for s in allowed_sans}
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'}

    def add_headers(response: Any) -> None:
        target = getattr(response, "headers", None)
        if not headers or target is None or getattr(response, "prepared", False):
            return  # a streamed response has already sent its headers
        for name, value in headers.items():
            target[name] = value

    @web.middleware
    async def webconfig_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path not in exempt:
                if allowed and not (_peer_sans(request) & allowed):
                    raise web.HTTPForbidden(text="Forbidden: client certificate not allowed\n")
                if auth is not None:
                    user = await auth.check(request.headers.get("Authorization"))
                    if user is None:
                        raise web.HTTPUnauthorized(text="Unauthorized\n", headers=challenge)
            response = await handler(request)
        except web.HTTPException as exc:
            add_headers(exc)
            raise
        add_headers(response)
        return response

    return webconfig_middleware


# -- hashing helper and CLI -------------------------------------------------


def make_bcrypt_hash(password: str | bytes, cost: int = DEFAULT_BCRYPT_COST) -> str:
    """bcrypt-hash ``password`` for ``basic_auth_users`` (like ``htpasswd -nBC 10``)."""
    if not 4 <= cost <= 31:
        raise ValueError(f"bcrypt cost must be between 4 and 31, got {cost}")
    raw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    if not raw:
        raise ValueError("password is empty")
    if len(raw) > _BCRYPT_MAX_PASSWORD:
        raise ValueError(f"password is {len(raw)} bytes; bcrypt uses at most {_BCRYPT_MAX_PASSWORD}")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=cost)).decode("ascii")


def _read_password(stdin: Any) -> str:
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != first:
            raise ValueError("passwords do not match")
        return first
    text = stdin.read()
    # One trailing newline belongs to `echo`, not to the password.
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def main(argv: list[str] | None = None) -> int:
    """``python -m accelscope.webconfig {hash,check}``."""
    parser = argparse.ArgumentParser(prog="python -m accelscope.webconfig",
                                     description="Helpers for exporter-toolkit web-config files.")
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hash", help="read a password from stdin, print its bcrypt hash")
    h.add_argument("-C", "--cost", type=int, default=DEFAULT_BCRYPT_COST,
                   help=f"bcrypt cost, 4-31 (default {DEFAULT_BCRYPT_COST})")
    h.add_argument("-u", "--user", help="print a 'user: hash' line for basic_auth_users instead")
    c = sub.add_parser("check", help="validate a web-config file (and its certificates)")
    c.add_argument("file")
    args = parser.parse_args(argv)

    if args.command == "hash":
        try:
            hashed = make_bcrypt_hash(_read_password(sys.stdin), args.cost)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(yaml.safe_dump({args.user: hashed}, default_flow_style=False).strip() if args.user else hashed)
        return 0
    try:
        config = load_web_config(args.file)
    except WebConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.file}: ok (tls={'on' if config.tls_enabled else 'off'}, "
          f"basic auth users={len(config.basic_auth_users)}, headers={len(config.headers)})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
