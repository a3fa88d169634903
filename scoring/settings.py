"""Configuration from the environment (SPEC section 5); a `.env` file may supply the same variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scoring.rules import RULES

DEMO_TOKEN = "talenthome-demo-token"
DEMO_APPID = "wx0000000000demo01"
DEMO_SECRET = "talenthome-demo-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/talenthome.db"
    # Unset: `talenthome` starts a private redis-server under ./var (see talenthome/redis_server.py).
    redis_url: str | None = None
    var_dir: str = "./var"

    wechat_token: SecretStr = SecretStr(DEMO_TOKEN)
    wechat_appid: str = DEMO_APPID
    wechat_secret: SecretStr = SecretStr(DEMO_SECRET)
    wechat_aes_key: SecretStr | None = None
    # WECHAT_AES_KEY set: only encrypted callbacks (encrypt_type=aes) are accepted, unless the account is in
    # WeChat's compatible mode (明文/密文兼容模式) and WECHAT_COMPATIBLE_MODE=1 says plain ones are fine too.
    wechat_compatible_mode: bool = False
    wechat_api_base: str = "https://api.weixin.qq.com/"
    # The window (web/): WeChat's OAuth authorize page (H5 login, snsapi_base) and the mini program's own
    # appid/secret for sns/jscode2session (empty: the official account's). WEB_BASE_URL is the public origin
    # the OAuth redirect comes back to (empty: the request's own scheme and Host).
    wechat_oauth_base: str = "https://open.weixin.qq.com/"
    miniprogram_appid: str = ""
    miniprogram_secret: SecretStr | None = None
    web_base_url: str = ""
    # Template message ids (worker/push.py). WECHAT_TEMPLATES maps a payload's "template" name to its id
    # (JSON, e.g. {"rank": "..."}); a name without one uses WECHAT_TEMPLATE_NOTICE (text in its `content`
    # field). Neither set: the text goes as a customer-service message (only inside the 48-hour window).
    wechat_templates: dict[str, str] = Field(default_factory=dict)
    wechat_template_notice: str = ""
    # Subscription notifications (订阅通知, message/subscribe/bizsend): WECHAT_SUBSCRIBE_TEMPLATES maps a push
    # kind to a subscription template id (JSON, e.g. {"redeem": "..."}); its "notice" entry is the general
    # one, the text in its `thing1` field (20 characters). A follower who accepted the template gets the
    # push that way; anyone else as above (worker/push.py, README "Pushes").
    wechat_subscribe_templates: dict[str, str] = Field(default_factory=dict)

    bot_host: str = "127.0.0.1"
    bot_port: int = 8080
    # Several `talenthome serve` processes on one port (SO_REUSEPORT; `talenthome run --bots N` sets it).
    bot_reuse_port: bool = False
    # `talenthome serve` on uvloop when it is installed (bot/loop.py); 0 keeps asyncio's own event loop.
    bot_uvloop: bool = True
    admin_openids: str = ""
    allow_plain_staff_commands: bool = False
    # Per-openid flood limit (bot/ratelimit.py): this many messages per window are handled; the first one over
    # gets a polite reply, the rest of the window is acknowledged silently. 0 turns the limit off.
    rate_limit_messages: int = Field(default=30, ge=0)
    rate_limit_window_s: int = Field(default=60, ge=1, le=3600)

    # Secret for the HMAC-signed QR scene tokens; defaults to one derived from the WeChat secret.
    scene_secret: SecretStr | None = None
    station_code_rotation_s: int = 300

    # Rules parameters (SPEC section 2 and 3); the defaults are the rules table's (scoring/rules.py).
    activity_lead_hours: int = RULES["R1"].params["lead_hours"]
    activity_min_attendees: int = RULES["R1"].params["min_attendees"]
    # An activity's code credits from ACTIVITY_CODE_GRACE_MINUTES before its start to as many after its end;
    # publishing an activity longer than ACTIVITY_MAX_HOURS takes an admin.
    activity_code_grace_minutes: int = Field(default=30, ge=0, le=24 * 60)
    activity_max_hours: int = Field(default=12, ge=1)
    rating_cohort: str = Field(default="all", pattern="^(all|type)$")
    subsidy_new_home_cny: int = 50_000
    subsidy_new_community_cny: int = 100_000
    subsidy_top_cny: int = 50_000

    # Fraud thresholds (SPEC section 3).
    fraud_multi_station_count: int = 3
    fraud_multi_station_minutes: int = 30
    fraud_daily_floor: int = 20
    fraud_daily_median_factor: int = 5

    # Services, bookings and consultations (issue 12; scoring/bookings.py, scoring/consultations.py).
    booking_horizon_days: int = Field(default=30, ge=1, le=365)  # how far ahead a slot may be booked
    booking_visit_capacity: int = Field(default=10, ge=1)  # talents per slot for a plain visit
    booking_reminder_minutes: int = Field(default=120, ge=5)  # the talent is reminded this long before
    talent_max_open_bookings: int = Field(default=3, ge=1)
    talent_max_open_questions: int = Field(default=3, ge=1)
    consultation_escalate_hours: float = Field(default=4, gt=0)  # working hours (Mon-Fri 9-18, Shanghai)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user:pass@host/db")
        return v

    @field_validator("wechat_aes_key", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if v in ("", None) else v

    @field_validator("wechat_aes_key")
    @classmethod
    def _aes_key_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) != 43:
            raise ValueError("the EncodingAESKey is 43 characters (copy it from the WeChat console)")
        return v

    def page_url(self, path: str) -> str:
        """An absolute link to a page of the window for the bot's replies: WEB_BASE_URL (the public origin),
        else this server's own address."""
        return (self.web_base_url or f"http://{self.bot_host}:{self.bot_port}").rstrip("/") + path

    @property
    def admin_openid_set(self) -> frozenset[str]:
        return frozenset(x.strip() for x in self.admin_openids.split(",") if x.strip())

    @property
    def safe_mode(self) -> bool:
        return self.wechat_aes_key is not None

    @property
    def scene_key(self) -> bytes:
        if self.scene_secret is not None:
            return self.scene_secret.get_secret_value().encode()
        return ("scene:" + self.wechat_secret.get_secret_value()).encode()
