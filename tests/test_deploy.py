"""The reference deployment in deploy/ (issue 14) is checked by the tools that will read it: `nginx -t` on the
site, `systemd-analyze verify` on the units, and the Redis settings by a real redis-server."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from talenthome.servers import free_port, redis_binary, server_env

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TALENTHOME = os.path.join(os.path.dirname(sys.executable), "talenthome")


def _need(tool: str) -> str:
    found = shutil.which(tool) or next((p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.path.exists(p)), None)
    if found is None:
        pytest.fail(f"{tool} is needed to check deploy/ (.ci/run installs it)")
    return found


def _self_signed(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "talent.example.gov.cn")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
            .sign(key, hashes.SHA256()))
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = _need("nginx")
    _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "talenthome.conf").read_text()
    for route in ("location = /wechat", "location /api/", "location /kiosk/", "location /admin", "location /"):
        assert route in site, route
    site = site.replace("/etc/ssl/talenthome/", f"{tmp_path}/").replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    include {tmp_path}/site.conf;
}}
""")
    out = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                         capture_output=True, text=True, timeout=60, env=server_env())
    assert out.returncode == 0, out.stderr
    # and it does fail on a broken site (the check has teeth)
    (tmp_path / "site.conf").write_text(site.replace("proxy_pass http://talenthome;", "proxy_pass;", 1))
    bad = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                         capture_output=True, text=True, timeout=60, env=server_env())
    assert bad.returncode != 0


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = _need("systemd-analyze")
    for unit in (DEPLOY / "systemd").iterdir():
        text = unit.read_text().replace("/opt/talenthome/.venv/bin/talenthome", TALENTHOME)
        # the environment file is the operator's to write; verify the units without it
        (tmp_path / unit.name).write_text(text.replace("EnvironmentFile=/etc/", "EnvironmentFile=-/etc/"))
    units = ["talenthome-bot@1.service", "talenthome-bot@2.service", "talenthome-worker@1.service",
             "talenthome.target", "talenthome-migrate.service"]
    out = subprocess.run([analyze, "verify", *units], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "BOT_REUSE_PORT=1" in (DEPLOY / "systemd" / "talenthome-bot@.service").read_text()


def test_redis_settings_start_a_real_server(tmp_path: Path) -> None:
    """Redis reads the file (an unknown directive stops it) and holds the settings the worker needs."""
    import redis as redis_sync

    conf = tmp_path / "redis.conf"
    conf.write_text((DEPLOY / "redis" / "talenthome.conf").read_text().replace("bind 127.0.0.1 ::1", "bind 127.0.0.1"))
    port = free_port()
    argv = [redis_binary(), str(conf), "--port", str(port), "--dir", str(tmp_path), "--daemonize", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())
    try:
        client = redis_sync.Redis(port=port)
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "redis-server refused deploy/redis/talenthome.conf"
            try:
                client.ping()
                break
            except redis_sync.ConnectionError:
                assert time.monotonic() < deadline, "redis did not start with deploy/redis/talenthome.conf"
                select.select([], [], [], 0.05)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
