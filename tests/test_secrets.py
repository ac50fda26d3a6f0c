"""Secrets stay secret: never in a repr, a log line or a complaint about a setting,
and the emulator's webhook secret only for a caller with its API token (as on
Replicate).

A setting that is wrong stops `studio` with one line `studio: SETTING: problem` and
exit code 2: no traceback, and never the value given, which may be a secret.

The emulator is spoken to over real HTTP: on its own port, embedded as the server
runs it, and as the `studio emulator` process.
"""

from __future__ import annotations

import logging
import secrets
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from replicate.client import Client

from api.app import create_app
from api.cli import main
from api.embedded import embedded_emulator
from api.settings import Settings, SettingsError, load_settings
from tests.emulator_harness import EmulatorServer
from tests.servers import StudioServer, studio_env

SECRET_PATH = "/v1/webhooks/default/secret"

SECRETS = {
    "secret_key": "k" * 40,
    "replicate_api_token": "r8_" + "t" * 30,
    "replicate_webhook_secret": "whsec_c2VjcmV0IHNpZ25pbmcga2V5IGZvciB0ZXN0cw==",
    "database_url": "postgresql+asyncpg://studio:hunter2-db-password@db.example.com/studio",
    "event_bus_url": "redis://:hunter2-bus-password@bus.example.com:6379/0",
}
REVEALING = ["k" * 40, "t" * 30, "c2VjcmV0", "hunter2-db-password", "hunter2-bus-password"]


def test_settings_never_show_their_secrets(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(**SECRETS)  # type: ignore[arg-type]
    logger = logging.getLogger("studio.test")
    with caplog.at_level(logging.INFO, logger="studio.test"):
        logger.info("configured: %s %r", settings, settings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), caplog.text]
    assert all(text for text in shown)
    for text in shown:
        for secret in REVEALING:
            assert secret not in text
    # The composition root gets them back whole.
    assert settings.resolved_secret_key() == "k" * 40
    assert settings.resolved_database_url() == SECRETS["database_url"]
    assert settings.replicate_api_token is not None
    assert settings.replicate_api_token.get_secret_value() == SECRETS["replicate_api_token"]
    assert not settings.uses_emulator
    # Blank still means unset.
    blank = Settings(secret_key="  ", replicate_api_token="", database_url=" ")
    assert blank.secret_key is None
    assert blank.replicate_api_token is None
    assert blank.embedded
    assert blank.uses_emulator


@pytest.mark.parametrize(
    "secret_key",
    [None, "", "changethis", "CHANGEME", "too-short-but-not-a-placeholder"],
    ids=["unset", "blank", "changethis", "changeme", "short"],
)
def test_configured_servers_need_a_real_secret_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_key: str | None
) -> None:
    """`studio serve` builds its app with `create_app`, which refuses such a key before
    anything opens; tests/test_e2e.py checks the CLI reports it cleanly."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}"
    settings = Settings(_env_file=None, database_url=database_url, secret_key=secret_key)
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        create_app(settings)
    # A real one is taken.
    create_app(Settings(_env_file=None, database_url=database_url, secret_key="k" * 32))


async def test_the_webhook_secret_goes_only_to_a_caller_with_the_emulators_token() -> None:
    with EmulatorServer(latency_ms=100) as open_emulator:
        async with httpx.AsyncClient(base_url=open_emulator.url, trust_env=False) as http:
            # Without a token of its own, the emulator hands its secret to no one...
            for headers in [{}, {"authorization": "Bearer anything"}]:
                refused = await http.get(SECRET_PATH, headers=headers)
                assert refused.status_code == 401
                assert "whsec_" not in refused.text
            # ...while the rest of its API stays open, for tests.
            assert (await http.get("/v1/predictions")).status_code == 200

    token = "r8_" + secrets.token_urlsafe(16)
    with EmulatorServer(latency_ms=100, api_token=token) as locked:
        async with httpx.AsyncClient(base_url=locked.url, trust_env=False) as http:
            for headers in [{}, {"authorization": "Bearer nope"}, {"authorization": token}]:
                assert (await http.get(SECRET_PATH, headers=headers)).status_code == 401
            granted = await http.get(SECRET_PATH, headers={"authorization": f"Bearer {token}"})
            assert granted.status_code == 200
            assert granted.json() == {"key": locked.config.webhook_secret}
        client = Client(api_token=token, base_url=locked.url)
        try:
            secret = (await client.webhooks.default.async_secret()).key
            assert secret == locked.config.webhook_secret
        finally:
            await client._async_client.aclose()


async def test_the_embedded_emulator_answers_only_with_its_token() -> None:
    async with embedded_emulator(latency_ms=100) as (base_url, config):
        assert config.api_token
        assert len(config.api_token) >= 32
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
            for path in [SECRET_PATH, "/v1/predictions", "/_emulator/faults"]:
                assert (await http.get(path)).status_code == 401, path
            headers = {"authorization": f"Bearer {config.api_token}"}
            secret = await http.get(SECRET_PATH, headers=headers)
            assert secret.json() == {"key": config.webhook_secret}
    async with embedded_emulator(latency_ms=100) as (_, another):
        assert another.api_token != config.api_token  # a new one for every run


@pytest.mark.e2e
def test_studio_emulator_uses_the_configured_token_and_prints_no_secret(tmp_path: Path) -> None:
    token = "r8_" + secrets.token_urlsafe(24)
    webhook_secret = SECRETS["replicate_webhook_secret"]
    env = studio_env(REPLICATE_API_TOKEN=token, REPLICATE_WEBHOOK_SECRET=webhook_secret)
    emulator = StudioServer(
        env=env, cwd=tmp_path, command="emulator", ready_path="/_emulator/health", name="emu"
    )
    with emulator:
        with httpx.Client(base_url=emulator.base_url, trust_env=False) as http:
            assert http.get(SECRET_PATH).status_code == 401
            granted = http.get(SECRET_PATH, headers={"authorization": f"Bearer {token}"})
            assert granted.json() == {"key": webhook_secret}
        output = emulator.output()
    assert token not in output
    assert "c2VjcmV0" not in output


@pytest.mark.e2e
def test_studio_emulator_makes_a_token_when_none_is_configured(tmp_path: Path) -> None:
    emulator = StudioServer(
        env=studio_env(), cwd=tmp_path, command="emulator", ready_path="/_emulator/health"
    )
    with emulator:
        printed = [
            line.rsplit(" ", 1)[-1]
            for line in emulator.output().splitlines()
            if "REPLICATE_API_TOKEN" in line
        ]
        assert len(printed) == 1
        with httpx.Client(base_url=emulator.base_url, trust_env=False) as http:
            assert http.get(SECRET_PATH).status_code == 401
            headers = {"authorization": f"Bearer {printed[0]}"}
            assert http.get(SECRET_PATH, headers=headers).json()["key"].startswith("whsec_")


# -- a setting that is wrong ---------------------------------------------------------------


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No studio setting in this process's environment (nor a `.env`): only the data dir."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("MAX_CONNECTIONS", "", "is empty: give a value, or unset it for its default (1000)"),
        ("MAX_CONNECTIONS", "abc", "Input should be a valid integer"),
        ("MAX_CONNECTIONS", "0", "Input should be greater than 0"),
        (
            "EMULATOR_LOG_REQUESTS",
            "",
            "is empty: give a value, or unset it for its default (false)",
        ),
        ("LOG_LEVEL", "", "must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG"),
        ("LOG_LEVEL", "loud", "must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG"),
        ("EVENT_BUS_URL", "kafka://u:KAFKAPW1@bus:9092", "must be memory://, redis://"),
        ("LIMITS_URL", "mongodb://u:LIMPW123@h", "must be memory:// or redis://"),
        (
            "REPLICATE_BASE_URL",
            "ftp://u:FTPPW1@files.example.com",
            "must be an http:// or https://",
        ),
        ("REPLICATE_BASE_URL", "https://", "has no host"),
        ("PUBLIC_URL", "ftp://studio.example.com", "must be an http:// or https://"),
        ("PUBLIC_URL", "https://u:PUBPW1@h:notaport", "not a valid URL"),
        ("DATABASE_URL", "mysql://u:DBPW1@db/studio", "not a database URL"),
        ("DATABASE_URL", "postgresql://u:DBPW2@db/studio", "not a database URL"),
    ],
)
def test_a_wrong_setting_is_one_line_without_its_value(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(setting, value)
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2, err
    assert err == f"studio: {setting}: {err.split(': ', 2)[2]}", err
    assert err.count("\n") == 1, err
    assert says in err, err
    assert out == ""
    for secret in ["KAFKAPW1", "LIMPW123", "FTPPW1", "PUBPW1", "DBPW1", "DBPW2"]:
        assert secret not in err
    assert not (environment / "data" / "studio.db").exists()  # nothing ran


def test_every_wrong_setting_gets_its_line(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_CONNECTIONS", "many")
    monkeypatch.setenv("LIMITS_URL", "mongodb://u:LIMPW123@h")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).splitlines() == [
        "MAX_CONNECTIONS: Input should be a valid integer, unable to parse string as an integer",
        "LIMITS_URL: must be memory:// or redis://host:6379/0 (or rediss://)",
    ]


def test_a_validation_error_never_repeats_the_value(environment: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(limits_url="mongodb://u:LIMPW123@h", database_url="mysql://u:DBPW1@h/x")
    assert "LIMPW123" not in str(refused.value)
    assert "DBPW1" not in str(refused.value)


def test_a_database_that_does_not_exist_is_said_plainly(
    environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/studio_no_such_db?password=QUERYPW1"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    _, err = capsys.readouterr()
    assert stopped.value.code == 1, err
    assert err == (
        "studio: cannot reach the database "
        "postgresql+asyncpg://postgres@127.0.0.1:5432/studio_no_such_db?password=***: "
        'database "studio_no_such_db" does not exist. '
        "Check DATABASE_URL and that the database server is running.\n"
    )


# -- every setting states what it accepts -------------------------------------------

BAD_VALUES: list[tuple[str, str]] = [
    ("database_url", "postgresql+asyncpg://u:PWDB7@db/studio?bogus=1"),
    ("database_url", "postgresql+asyncpg://u:PWDB8@db:99999/studio"),
    ("database_url", "sqlite+aiosqlite://PWHOST/file.db"),
    ("secret_key", "PWKEY\twith a tab in it, long enough to be a key"),
    ("public_url", "https://u:PWPUB@studio.example.com:0"),
    ("studio_data_dir", "data\0PWDIR"),
    ("log_level", "LOUDEST"),
    ("max_request_bytes", str(2**40)),
    ("body_read_timeout_seconds", "inf"),
    ("database_pool_timeout_seconds", "0"),
    ("max_connections", str(10**29)),
    ("websocket_init_timeout_seconds", "nan"),
    ("max_unsigned_websockets_per_address", "-7"),
    ("listen_backlog", "99999999"),
    ("keep_alive_seconds", "999999999"),
    ("media_root", "media\0PWDIR"),
    ("replicate_api_token", "r8_PWTOKEN with a space"),
    ("replicate_base_url", "https://u:PWRB@api.example.com:99999"),
    ("replicate_webhook_secret", "whsec_PWHOOK\nsecond line"),
    ("emulator_latency_ms", "-7"),
    ("emulator_log_requests", "sometimes"),
    ("generation_poll_seconds", "-7"),
    ("replicate_call_timeout_seconds", "1e308"),
    ("replicate_retry_after_cap_seconds", "-7"),
    ("replicate_post_attempts", "1000000"),
    ("generation_max_tries", "-7"),
    ("generation_claim_seconds", "inf"),
    ("event_bus_url", "redis://:PWBUS@bus.example.com:6379/notanint"),
    ("event_bus_url", "postgres://u:PWBUS2@db.example.com:99999/studio"),
    ("allowed_origins", "https://u:SuperSecretPW@x.com/path"),
    ("allowed_origins", "https://app.example.com,ftp://PWORIGIN.example.com"),
    ("event_retention_days", "1e12"),
    ("subscription_queue_size", "-7"),
    ("limits_url", "redis://:PWLIM@limits.example.com:99999/0"),
    ("trusted_proxies", "10.0.0.0/33,PWjunk"),
    ("trusted_proxies", "10.0.0.1/8"),
    ("rate_limit_graphql", "PWRATE/fortnight"),
    ("rate_limit_media", "PWMEDIA"),
    ("rate_limit_sign_up", "5/PWSIGN"),
    ("rate_limit_ipv6_prefix", "129"),
    ("max_input_list_length", str(10**12)),
    ("max_subscriptions_per_connection", "-7"),
    ("max_subscriptions_per_user", str(10**12)),
    ("subscription_lease_seconds", "inf"),
    ("login_free_failures", "-7"),
    ("login_address_free_failures", str(10**12)),
    ("login_account_free_failures", "-7"),
    ("login_base_delay_seconds", "nan"),
    ("login_max_delay_seconds", "1e300"),
    ("login_account_max_delay_seconds", "-7"),
    ("login_failure_memory_seconds", "inf"),
    ("invitation_lifetime_days", "1e12"),
    ("max_pending_invitations", "-7"),
    ("password_hash_memory_kib", str(2**40)),
    ("password_hash_iterations", "1000000"),
    ("password_hash_lanes", "2000"),
    ("password_hash_concurrency", "-7"),
    ("outbound_allowed_hosts", "files.example.com:99999"),
    ("outbound_allowed_hosts", "u:PWOUT@files.example.com"),
    ("outbound_max_image_bytes", "-7"),
    ("outbound_max_video_bytes", str(2**50)),
    ("outbound_connect_timeout_seconds", "inf"),
    ("outbound_read_timeout_seconds", "-7"),
    ("outbound_total_timeout_seconds", "1e100"),
    ("outbound_max_redirects", "1000"),
    ("copy_max_tries", "-7"),
    ("copy_retry_seconds", "inf"),
    ("copy_concurrency", "100000"),
    ("event_outbox_size", str(10**29)),
    ("subscription_fanout_concurrency", "-7"),
    ("websocket_compression", "perhaps"),
    ("subscription_fanout_lease_seconds", "nan"),
]


def test_every_setting_has_a_bad_value_below() -> None:
    assert {name for name, _ in BAD_VALUES} == set(Settings.model_fields)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_each_setting_refuses_a_bad_value_in_one_line_without_it(
    environment: Path, name: str, value: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**{name: value})
    message = str(refused.value)
    assert "\n" not in message, message
    assert message.startswith(f"{name.upper()}: "), message
    assert value not in message, message
    assert "PW" not in message, message


def test_argon2_lanes_need_their_memory(environment: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(password_hash_memory_kib=16, password_hash_lanes=4)
    assert str(refused.value) == (
        "PASSWORD_HASH_LANES: each lane needs 8 KiB of PASSWORD_HASH_MEMORY_KIB: "
        "give fewer lanes or more memory"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("allowed_origins", "https://app.example.com, http://localhost:3000"),
        ("allowed_origins", "*"),
        ("trusted_proxies", "10.0.0.0/8, 127.0.0.1, fd00::/8"),
        ("trusted_proxies", "*"),
        ("outbound_allowed_hosts", "files.example.com, 127.0.0.1:8001, [::1]:9000"),
        ("event_bus_url", "redis://:pw@127.0.0.1:6379/0"),
        ("event_bus_url", "postgres://studio@db.example.com:5432/studio"),
        ("limits_url", "rediss://limits.example.com"),
        ("database_url", "postgresql+asyncpg://u:pw@db:5432/studio?ssl=require&timeout=10"),
        ("database_url", "sqlite+aiosqlite:///var/lib/studio/studio.db"),
    ],
)
def test_good_values_are_taken(environment: Path, name: str, value: str) -> None:
    load_settings(**{name: value})


# -- a database that cannot be used ---------------------------------------------------

KEY = "k" * 40


def studio_fails(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    command: Sequence[str] = ("migrate",),
) -> tuple[object, str]:
    """`studio COMMAND` with DATABASE_URL=url, which must stop with one line on stderr
    and nothing on stdout: its exit code and that line."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", KEY)
    with pytest.raises(SystemExit) as stopped:
        main(list(command))
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return stopped.value.code, err


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """An SQLite database file no one may write, root included (chattr +i)."""
    path = tmp_path / "frozen.db"
    sqlite3.connect(path).close()
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_file_is_one_line(
    environment: Path,
    immutable: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite+aiosqlite:///{immutable}"
    code, err = studio_fails(monkeypatch, capsys, url)
    assert code == 1
    assert err == (
        f"studio: cannot use the database {url}: attempt to write a readonly database. "
        "Check that the file is an SQLite database this user can read and write.\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, served = studio_fails(monkeypatch, capsys, url, ["serve", "--port", str(port)])
    assert (code, served) == (1, err)


@pytest.mark.parametrize(
    ("file", "reason"),
    [("not-a-database.db", "file is not a database"), ("no/such/dir.db", "unable to open")],
)
def test_a_file_that_is_no_database_is_one_line(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    file: str,
    reason: str,
) -> None:
    (environment / "not-a-database.db").write_text("a letter, not a database\n" * 100)
    code, err = studio_fails(monkeypatch, capsys, f"sqlite+aiosqlite:///{environment / file}")
    assert code == 1
    assert err.startswith("studio: cannot use the database "), err
    assert reason in err
    time.sleep(0.5)  # no driver thread left behind to print a traceback later
    assert capsys.readouterr().err == ""


def test_a_url_the_driver_refuses_is_a_setting_error(
    environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings take `timeout` (asyncpg.connect has it); asyncpg refuses a word for it.
    url = "postgresql+asyncpg://postgres:PWDRIVER@127.0.0.1:5432/postgres?timeout=PWsoon"
    code, err = studio_fails(monkeypatch, capsys, url)
    assert code == 2
    assert err == (
        "studio: DATABASE_URL: the database driver refuses it: a query parameter it does "
        "not take, or a value of the wrong kind\n"
    )
