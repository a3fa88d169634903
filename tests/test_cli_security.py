"""The public demo credentials never serve beyond loopback, and `talenthome run` prints no secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from scoring.settings import DEMO_SECRET, DEMO_TOKEN, Settings
from talenthome.commands.service import banner, demo_credentials, is_loopback, refuse_public_demo
from talenthome.runtime import CliError
from tests.cli import run_cli

REAL = {"WECHAT_TOKEN": "q9T3xLw2-real-token", "WECHAT_SECRET": "0123456789abcdef0123456789abcdef"}


@pytest.mark.parametrize("command", ["serve", "run"])
@pytest.mark.parametrize(("token", "secret", "named"), [
    (DEMO_TOKEN, DEMO_SECRET, "WECHAT_TOKEN and WECHAT_SECRET"),
    (REAL["WECHAT_TOKEN"], DEMO_SECRET, "WECHAT_SECRET"),
    (DEMO_TOKEN, REAL["WECHAT_SECRET"], "WECHAT_TOKEN"),
])
async def test_demo_credentials_refused_off_loopback(tmp_path, command, token, secret, named):
    db = tmp_path / "never.db"
    out = await run_cli(command, env={"BOT_HOST": "0.0.0.0", "WECHAT_TOKEN": token, "WECHAT_SECRET": secret,
                                      "DATABASE_URL": f"sqlite+aiosqlite:///{db}", "VAR_DIR": str(tmp_path)})
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"public demo value of {named}:" in out.stderr and "BOT_HOST=0.0.0.0" in out.stderr
    assert token not in out.stderr + out.stdout and secret not in out.stderr + out.stdout
    assert not db.exists()  # refused before anything was touched (run migrates first otherwise)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False),
    ("bot.example.com", False), ("localhost.example.com", False),
])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_demo_values_on_loopback_are_fine_and_real_ones_anywhere():
    refuse_public_demo(Settings(bot_host="127.0.0.1"))
    refuse_public_demo(Settings(bot_host="0.0.0.0", wechat_token=SecretStr(REAL["WECHAT_TOKEN"]),
                                wechat_secret=SecretStr(REAL["WECHAT_SECRET"])))
    with pytest.raises(CliError, match="WECHAT_TOKEN and WECHAT_SECRET"):
        refuse_public_demo(Settings(bot_host="0.0.0.0"))
    assert demo_credentials(Settings(wechat_token=SecretStr(REAL["WECHAT_TOKEN"]))) == ["WECHAT_SECRET"]


@pytest.mark.parametrize("token", [DEMO_TOKEN, REAL["WECHAT_TOKEN"]])
def test_banner_prints_no_secret(token):
    settings = Settings(wechat_token=SecretStr(token), wechat_secret=SecretStr(REAL["WECHAT_SECRET"]),
                        wechat_aes_key=SecretStr("a" * 43),
                        database_url="postgresql+asyncpg://talenthome:db-pass-1@127.0.0.1/talenthome")
    text = banner(settings, "redis://:redis-pass-2@127.0.0.1:6379/0")
    for secret in (token, REAL["WECHAT_SECRET"], "a" * 43, "db-pass-1", "redis-pass-2"):
        assert secret not in text
    assert "Token: the value of WECHAT_TOKEN" in text
    assert "postgresql+asyncpg://talenthome:***@127.0.0.1/talenthome" in text
    assert "redis://:***@127.0.0.1:6379/0" in text
    assert ("demo value" in text) is (token == DEMO_TOKEN)
