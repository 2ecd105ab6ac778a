"""Tests for accelscope.webconfig: exporter-toolkit web-config on aiohttp.

Everything runs on 127.0.0.1 with an ephemeral port.  Certificates are
generated with ``cryptography`` (EC P-256, so it is fast); bcrypt uses cost 4.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import io
import ipaddress
import ssl
import subprocess
import sys
import textwrap
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import bcrypt
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accelscope import webconfig
from accelscope.webconfig import WebConfig, WebConfigError, load_web_config, make_bcrypt_hash

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret-scrape"
COST = 4


# -- PKI ----------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], cn: str,
          sans: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    crt, pem = directory / f"{stem}.crt", directory / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("pki")
    ca = _ca("accelscope test CA")
    rogue = _ca("rogue CA")
    (d / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    server = _leaf(ca, "localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                   ExtendedKeyUsageOID.SERVER_AUTH)
    client = _leaf(ca, "prometheus", [x509.DNSName("prometheus.monitoring.svc"),
                                      x509.UniformResourceIdentifier("spiffe://cluster.local/ns/monitoring/sa/prometheus")],
                   ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _leaf(ca, "intruder", [x509.DNSName("intruder.example")], ExtendedKeyUsageOID.CLIENT_AUTH)
    foreign = _leaf(rogue, "prometheus", [x509.DNSName("prometheus.monitoring.svc")], ExtendedKeyUsageOID.CLIENT_AUTH)
    ns = SimpleNamespace(dir=d, ca=d / "ca.crt")
    ns.server_crt, ns.server_key = _write(d, "server", *server)
    ns.client_crt, ns.client_key = _write(d, "client", *client)
    ns.other_crt, ns.other_key = _write(d, "other", *other)
    ns.foreign_crt, ns.foreign_key = _write(d, "foreign", *foreign)
    return ns


@pytest.fixture(scope="module")
def pw_hash() -> str:
    return make_bcrypt_hash(PASSWORD, cost=COST)


def _config(tmp_path: Path, text: str, name: str = "web.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _tls_yaml(pki: SimpleNamespace, extra: str = "") -> str:
    return (f"tls_server_config:\n  cert_file: {pki.server_crt}\n  key_file: {pki.server_key}\n"
            + textwrap.indent(textwrap.dedent(extra), "  "))


# -- server / client helpers ------------------------------------------------


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


@contextlib.asynccontextmanager
async def serve(config: WebConfig, exempt: tuple[str, ...] = ("/healthz",)) -> AsyncIterator[str]:
    mw = config.middleware(exempt=exempt)
    app = web.Application(middlewares=[mw] if mw else [])
    app.router.add_get("/metrics", _ok)
    app.router.add_get("/healthz", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ctx = config.ssl_context()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ctx else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client_ctx(pki: SimpleNamespace, cert: str | None = None, *, max_version: ssl.TLSVersion | None = None,
               legacy: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca)
    with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated, which is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if legacy:  # let this client offer TLS 1.0/1.1 at all
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        if max_version is not None:
            ctx.maximum_version = max_version
    if cert is not None:
        ctx.load_cert_chain(getattr(pki, f"{cert}_crt"), getattr(pki, f"{cert}_key"))
    return ctx


async def get(url: str, *, ssl_ctx: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    headers = dict(headers or {})
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=ssl_ctx if ssl_ctx is not None else True, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.text()


async def handshake_version(url: str, ctx: ssl.SSLContext) -> str:
    port = int(url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    try:
        return writer.get_extra_info("ssl_object").version()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@pytest.fixture
def count_checkpw(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


# -- loading ------------------------------------------------------------------


def test_plain_config_loads(tmp_path: Path, pw_hash: str) -> None:
    cfg = load_web_config(_config(tmp_path, f"""
        http_server_config:
          headers:
            X-Frame-Options: deny
            X-Content-Type-Options: nosniff
        basic_auth_users:
          prometheus: '{pw_hash}'
    """))
    assert cfg.tls is None and cfg.ssl_context() is None
    assert cfg.basic_auth_users == {"prometheus": pw_hash}
    assert cfg.headers == {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}
    assert cfg.middleware() is not None


def test_empty_file_means_nothing_to_do(tmp_path: Path) -> None:
    cfg = load_web_config(_config(tmp_path, ""))
    assert cfg.ssl_context() is None
    assert cfg.middleware() is None


@pytest.mark.parametrize("text, key", [
    ("basic_auth_user: {}\n", "basic_auth_user"),
    ("tls_server_config:\n  cert_fil: x\n", "tls_server_config.cert_fil"),
    ("http_server_config:\n  gzip: true\n", "http_server_config.gzip"),
])
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(WebConfigError, match="unknown key") as err:
        load_web_config(path)
    assert key in str(err.value) and str(path) in str(err.value)
    assert err.value.key == key


def test_known_but_unsupported_key_says_so(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="rate_limit: exporter-toolkit option not supported"):
        load_web_config(_config(tmp_path, "rate_limit:\n  interval: 1s\n  burst: 10\n"))


def test_duplicate_key_is_refused(tmp_path: Path, pw_hash: str) -> None:
    with pytest.raises(WebConfigError, match="duplicate key 'a'"):
        load_web_config(_config(tmp_path, f"basic_auth_users:\n  a: '{pw_hash}'\n  a: '{pw_hash}'\n"))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="does not exist") as err:
        load_web_config(tmp_path / "nope.yml")
    assert "nope.yml" in str(err.value)


def test_missing_cert_file_names_the_path(tmp_path: Path, pki: SimpleNamespace) -> None:
    path = _config(tmp_path, f"tls_server_config:\n  cert_file: missing.crt\n  key_file: {pki.server_key}\n")
    with pytest.raises(WebConfigError) as err:
        load_web_config(path)
    msg = str(err.value)
    assert str(tmp_path / "missing.crt") in msg and "tls_server_config.cert_file" in msg and "does not exist" in msg


def test_key_file_required_with_cert(tmp_path: Path, pki: SimpleNamespace) -> None:
    with pytest.raises(WebConfigError, match="tls_server_config.key_file: missing"):
        load_web_config(_config(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_crt}\n"))


def test_mismatched_key_is_reported(tmp_path: Path, pki: SimpleNamespace) -> None:
    path = _config(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_crt}\n  key_file: {pki.client_key}\n")
    with pytest.raises(WebConfigError, match="cannot load certificate") as err:
        load_web_config(path)
    assert str(pki.client_key) in str(err.value)


def test_relative_paths_resolve_against_config_dir(pki: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    path = _config(pki.dir, "tls_server_config:\n  cert_file: server.crt\n  key_file: ./server.key\n",
                   name="relative.yml")
    monkeypatch.chdir(tmp_path)
    cfg = load_web_config(path)
    assert cfg.tls is not None and cfg.tls.cert_file == pki.dir / "server.crt"
    assert isinstance(cfg.ssl_context(), ssl.SSLContext)


@pytest.mark.parametrize("extra, match", [
    ("min_version: TLS11\n", "min_version: TLS11 is refused"),
    ("min_version: TLS10\n", "min_version: TLS10 is refused"),
    ("max_version: TLS11\n", "max_version: TLS11 is refused"),
    ("min_version: SSL3\n", "unknown TLS version 'SSL3'"),
    ("min_version: TLS13\nmax_version: TLS12\n", "max_version: TLS12 is below min_version TLS13"),
])
def test_bad_tls_versions_refused(tmp_path: Path, pki: SimpleNamespace, extra: str, match: str) -> None:
    with pytest.raises(WebConfigError, match=match):
        load_web_config(_config(tmp_path, _tls_yaml(pki, extra)))


@pytest.mark.parametrize("extra, match", [
    ("client_ca_file: ca.crt\n", "client CA configured without a client auth policy"),
    ("client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
    ("client_auth_type: Sometimes\n", "unknown value 'Sometimes'"),
    ("client_allowed_sans: [a]\n", "client_allowed_sans: needs verified client certificates"),
    ("cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", r"cipher_suites\[0\]: unknown or unsupported cipher suite"),
    ("prefer_server_cipher_suites: maybe\n", "expected true or false"),
    ("curve_preferences: [X25519]\n", "curve_preferences: exporter-toolkit option not supported"),
])
def test_bad_tls_settings_refused(tmp_path: Path, pki: SimpleNamespace, extra: str, match: str) -> None:
    with pytest.raises(WebConfigError, match=match):
        load_web_config(_config(pki.dir, _tls_yaml(pki, extra), name="bad.yml"))


@pytest.mark.parametrize("auth_type, mode, note", [
    ("NoClientCert", ssl.CERT_NONE, None),
    ("RequestClientCert", ssl.CERT_NONE, "not requested"),
    ("RequireAnyClientCert", ssl.CERT_REQUIRED, "must also verify"),
    ("RequireClientCert", ssl.CERT_REQUIRED, "must also verify"),  # exporter-toolkit's legacy name
    ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL, None),
    ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED, None),
])
def test_ssl_context_settings(tmp_path: Path, pki: SimpleNamespace, auth_type: str, mode: ssl.VerifyMode,
                              note: str | None) -> None:
    ca = f"client_ca_file: {pki.ca}\n" if mode != ssl.CERT_NONE else ""
    cfg = load_web_config(_config(tmp_path, _tls_yaml(pki, f"client_auth_type: {auth_type}\n{ca}")))
    ctx = cfg.ssl_context()
    assert ctx is not None and ctx is not cfg.ssl_context()  # fresh each call
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == mode
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert any(note in n for n in cfg.notes) if note else not cfg.notes


def test_encrypted_key_refused_without_prompting(tmp_path: Path, pki: SimpleNamespace) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pw")))
    path = _config(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_crt}\n  key_file: enc.key\n")
    with pytest.raises(WebConfigError, match="key_file: .*enc.key is encrypted"):
        load_web_config(path)


def test_tls_settings_without_cert_mean_plain_http(tmp_path: Path) -> None:
    cfg = load_web_config(_config(tmp_path, "tls_server_config:\n  min_version: TLS13\n"))
    assert cfg.ssl_context() is None
    assert any("TLS is off" in n for n in cfg.notes)


def test_cipher_suites_map_to_openssl(tmp_path: Path, pki: SimpleNamespace) -> None:
    cfg = load_web_config(_config(tmp_path, _tls_yaml(pki, """
        cipher_suites:
          - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
          - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
          - TLS_AES_128_GCM_SHA256
        prefer_server_cipher_suites: false
    """)))
    ctx = cfg.ssl_context()
    assert ctx is not None
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"}
    assert not ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE


@pytest.mark.parametrize("headers, match", [
    ({"X-Powered-By": "me"}, "X-Powered-By: this header cannot be configured"),
    ({"x-frame-options": "deny"}, "cannot be configured"),
    ({"X-Frame-Options": "allow"}, "expected one of deny, sameorigin"),
])
def test_bad_headers_refused(tmp_path: Path, headers: dict[str, str], match: str) -> None:
    body = "".join(f"    {k}: {v}\n" for k, v in headers.items())
    with pytest.raises(WebConfigError, match=match):
        load_web_config(_config(tmp_path, "http_server_config:\n  headers:\n" + body))


def test_bad_hash_names_user_not_value(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="basic_auth_users.alice: not a bcrypt hash") as err:
        load_web_config(_config(tmp_path, "basic_auth_users:\n  alice: hunter2\n"))
    assert "hunter2" not in str(err.value)


def test_http2_accepted_and_ignored(tmp_path: Path) -> None:
    cfg = load_web_config(_config(tmp_path, "http_server_config:\n  http2: false\n"))
    assert cfg.http2 is False
    assert any("http2 is ignored" in note for note in cfg.notes)
    assert cfg.middleware() is None


def test_docs_example_is_valid() -> None:
    text = (REPO_ROOT / "docs" / "web-config.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = WebConfig.from_mapping(yaml.safe_load(example), base_dir="/etc/accelscope", source="docs")
    assert cfg.tls is not None and cfg.tls.cert_file == Path("/etc/accelscope/tls/tls.crt")
    assert cfg.tls.client_allowed_sans and set(cfg.basic_auth_users) == {"prometheus"}


# -- TLS on the wire -----------------------------------------------------------

_HANDSHAKE_FAILURES = (ssl.SSLError, ConnectionResetError)


async def test_tls12_client_works_tls11_client_fails(tmp_path: Path, pki: SimpleNamespace) -> None:
    cfg = load_web_config(_config(tmp_path, _tls_yaml(pki)))
    async with serve(cfg) as url:
        assert url.startswith("https://")
        # Same client settings apart from the highest version it will speak.
        modern = client_ctx(pki, legacy=True, max_version=ssl.TLSVersion.TLSv1_2)
        assert await handshake_version(url, modern) == "TLSv1.2"
        status, _, body = await get(url + "/metrics", ssl_ctx=modern)
        assert (status, body) == (200, "ok")
        old = client_ctx(pki, legacy=True, max_version=ssl.TLSVersion.TLSv1_1)
        # The server answers with a protocol_version alert; asyncio may abort
        # the socket before the client reads it, hence the reset.
        with pytest.raises(_HANDSHAKE_FAILURES):
            await handshake_version(url, old)


async def test_min_version_tls13_refuses_tls12(tmp_path: Path, pki: SimpleNamespace) -> None:
    cfg = load_web_config(_config(tmp_path, _tls_yaml(pki, "min_version: TLS13\n")))
    async with serve(cfg) as url:
        assert await handshake_version(url, client_ctx(pki)) == "TLSv1.3"
        with pytest.raises(_HANDSHAKE_FAILURES):
            await handshake_version(url, client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2))


_CLIENT_FAILURES = (aiohttp.ClientError, ssl.SSLError, ConnectionError)


async def test_require_and_verify_client_cert(tmp_path: Path, pki: SimpleNamespace) -> None:
    cfg = load_web_config(_config(tmp_path, _tls_yaml(pki, f"""
        client_auth_type: RequireAndVerifyClientCert
        client_ca_file: {pki.ca}
    """)))
    async with serve(cfg) as url:
        with pytest.raises(_CLIENT_FAILURES):
            await get(url + "/metrics", ssl_ctx=client_ctx(pki))
        with pytest.raises(_CLIENT_FAILURES):
            await get(url + "/metrics", ssl_ctx=client_ctx(pki, "foreign"))
        status, _, body = await get(url + "/metrics", ssl_ctx=client_ctx(pki, "client"))
        assert (status, body) == (200, "ok")


async def test_client_allowed_sans(tmp_path: Path, pki: SimpleNamespace) -> None:
    cfg = load_web_config(_config(tmp_path, _tls_yaml(pki, f"""
        client_auth_type: RequireAndVerifyClientCert
        client_ca_file: {pki.ca}
        client_allowed_sans:
          - spiffe://cluster.local/ns/monitoring/sa/prometheus
    """)))
    async with serve(cfg) as url:
        status, _, _ = await get(url + "/metrics", ssl_ctx=client_ctx(pki, "client"))
        assert status == 200
        status, _, _ = await get(url + "/metrics", ssl_ctx=client_ctx(pki, "other"))
        assert status == 403


# -- basic auth and headers --------------------------------------------------------


async def test_basic_auth(tmp_path: Path, pw_hash: str, count_checkpw: list[bytes]) -> None:
    cfg = load_web_config(_config(tmp_path, f"basic_auth_users:\n  prometheus: '{pw_hash}'\n"))
    async with serve(cfg) as url:
        status, headers, _ = await get(url + "/metrics")
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="accelscope"'
        assert not count_checkpw  # no credentials: nothing to compare

        status, headers, _ = await get(url + "/metrics", auth=("prometheus", "wrong"))
        assert status == 401 and "WWW-Authenticate" in headers

        status, _, _ = await get(url + "/metrics", headers={"Authorization": "Basic !!!not-base64"})
        assert status == 401

        for _ in range(3):
            status, _, body = await get(url + "/metrics", auth=("prometheus", PASSWORD))
            assert (status, body) == (200, "ok")
        compared = len(count_checkpw)
        assert compared == 2  # one for the wrong password, one for the three right ones


async def test_unknown_user_still_runs_bcrypt(tmp_path: Path, pw_hash: str, count_checkpw: list[bytes]) -> None:
    cfg = load_web_config(_config(tmp_path, f"basic_auth_users:\n  prometheus: '{pw_hash}'\n"))
    async with serve(cfg) as url:
        status, _, _ = await get(url + "/metrics", auth=("nobody", PASSWORD))
        assert status == 401
    assert len(count_checkpw) == 1 and count_checkpw[0] != pw_hash.encode()


async def test_exempt_path_served_without_auth(tmp_path: Path, pw_hash: str) -> None:
    cfg = load_web_config(_config(tmp_path, f"basic_auth_users:\n  prometheus: '{pw_hash}'\n"))
    async with serve(cfg, exempt=("/healthz",)) as url:
        assert (await get(url + "/healthz"))[0] == 200
        assert (await get(url + "/metrics"))[0] == 401


async def test_headers_added_to_every_response(tmp_path: Path, pw_hash: str) -> None:
    cfg = load_web_config(_config(tmp_path, f"""
        http_server_config:
          headers:
            X-Frame-Options: deny
            Content-Security-Policy: "default-src 'none'"
        basic_auth_users:
          prometheus: '{pw_hash}'
    """))
    async with serve(cfg) as url:
        for path, auth, expected in (("/metrics", ("prometheus", PASSWORD), 200), ("/metrics", None, 401),
                                     ("/healthz", None, 200), ("/nope", ("prometheus", PASSWORD), 404)):
            status, headers, _ = await get(url + path, auth=auth)
            assert status == expected
            assert headers["X-Frame-Options"] == "deny"
            assert headers["Content-Security-Policy"] == "default-src 'none'"


async def test_auth_cache_is_bounded(pw_hash: str, count_checkpw: list[bytes]) -> None:
    users = {f"u{i}": make_bcrypt_hash(f"pw{i}", cost=COST) for i in range(3)}
    auth = webconfig._BasicAuth(users, cache_size=2)

    def header(i: int) -> str:
        return "Basic " + base64.b64encode(f"u{i}:pw{i}".encode()).decode()

    for i in range(3):
        assert await auth.check(header(i)) == f"u{i}"
    assert len(auth._cache) == 2
    await auth.check(header(0))  # evicted first, so compared again
    assert len(count_checkpw) == 4


# -- hashing helper and CLI ------------------------------------------------------


def test_make_bcrypt_hash() -> None:
    hashed = make_bcrypt_hash("pw", cost=COST)
    assert hashed.startswith("$2b$04$")
    assert bcrypt.checkpw(b"pw", hashed.encode())
    with pytest.raises(ValueError, match="at most 72"):
        make_bcrypt_hash("x" * 73, cost=COST)
    with pytest.raises(ValueError, match="empty"):
        make_bcrypt_hash("", cost=COST)


def test_cli_hash_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hunter2\n"))
    assert webconfig.main(["hash", "--cost", str(COST)]) == 0
    hashed = capsys.readouterr().out.strip()
    assert bcrypt.checkpw(b"hunter2", hashed.encode())


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert webconfig.main(["check", str(_config(tmp_path, "http_server_config:\n  http2: true\n"))]) == 0
    assert webconfig.main(["check", str(_config(tmp_path, "bogus: 1\n", name="bad.yml"))]) == 1
    assert "bogus: unknown key" in capsys.readouterr().err


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "accelscope.webconfig", "hash", "-C", str(COST)],
                         input="pw\n", capture_output=True, text=True, cwd=REPO_ROOT, timeout=30, check=True)
    assert bcrypt.checkpw(b"pw", out.stdout.strip().encode())
