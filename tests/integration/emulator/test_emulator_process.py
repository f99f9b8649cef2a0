"""The CLI in a child process, ``--db`` persistence across a restart, and the subprocess runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from qstash_emulator import FaultConfig, QStashEmulator
from qstash_emulator.server import READY_PREFIX, bind_socket

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The emulator's own distribution: its children get only this on their path (it needs nothing of the provider).
EMULATOR_ROOT = REPO_ROOT / "emulator"


def _free_port() -> int:
    sock = bind_socket("127.0.0.1", 0)
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def _start_cli(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EMULATOR_ROOT), full_env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qstash_emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the ready line (or EOF if it died)
    if not line.startswith(READY_PREFIX):
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"emulator CLI did not start: {line!r} {err}")
    return proc, line[len(READY_PREFIX) :].strip()


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qstash_emulator", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ if env is None else env, PYTHONPATH=str(EMULATOR_ROOT)),
        timeout=30,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_starts_answers_and_stops_cleanly(sig: int) -> None:
    port = _free_port()
    proc, base_url = _start_cli(
        "--port", str(port), "--token", "cli-token", "--seed", "25", "--seed-random", "4", "--bulk-cancel", "legacy"
    )
    try:
        assert base_url == f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer cli-token"}
        assert requests.get(base_url + "/v2/queues", timeout=5).status_code == 401
        assert requests.get(base_url + "/v2/queues", headers=headers, timeout=5).status_code == 200
        response = requests.delete(base_url + "/v2/messages", params={"count": 10}, headers=headers, timeout=5)
        assert response.json() == {"cancelled": 10}
        assert requests.get(base_url + "/_emulator/stats", timeout=5).json() == {"held": 15, "cancelled": 10}
    finally:
        code = _stop(proc, sig)
    assert code == 0


def test_cli_token_from_environment_and_fault_flags() -> None:
    env = dict(os.environ, QSTASH_EMULATOR_TOKEN="env-token")
    proc, base_url = _start_cli("--port", "0", "--fault-429", "1", "--reset-after-s", "0", "--fault-seed", "5", env=env)
    try:
        response = requests.get(base_url + "/v2/queues", headers={"Authorization": "Bearer env-token"}, timeout=5)
        assert response.status_code == 429
        assert response.headers["Burst-RateLimit-Remaining"] == "0"
        faults = requests.get(base_url + "/_emulator/faults", timeout=5).json()
        assert faults["rate_429"] == 1.0 and faults["seed"] == 5 and faults["reset_after_s"] == 0
    finally:
        assert _stop(proc) == 0


def test_cli_default_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "QSTASH_EMULATOR_TOKEN"}
    proc, base_url = _start_cli("--port", "0", env=env)
    try:
        headers = {"Authorization": "Bearer emulator-token"}
        assert requests.get(base_url + "/v2/queues", headers=headers, timeout=5).status_code == 200
    finally:
        assert _stop(proc) == 0


def test_cli_refuses_a_bad_fault_rate() -> None:
    result = _run_cli("--port", "0", "--fault-5xx", "3")
    assert result.returncode == 2
    assert "rate_5xx" in result.stderr


def test_db_file_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "qstash.sqlite")
    headers = {"Authorization": "Bearer t"}
    proc, base_url = _start_cli("--port", "0", "--token", "t", "--db", db, "--bulk-cancel", "legacy")
    try:
        published = requests.post(
            base_url + "/v2/enqueue/jobs/https://example.com/run", headers={**headers, "Upstash-Label": "keep"}
        )
        message_id = published.json()["messageId"]
        requests.post(base_url + "/_emulator/seed", json={"count": 40, "seed": 1}, timeout=10)
        response = requests.delete(base_url + "/v2/messages", params={"count": 15}, headers=headers, timeout=5)
        assert response.json() == {"cancelled": 15}
    finally:
        assert _stop(proc) == 0

    proc, base_url = _start_cli("--port", "0", "--token", "t", "--db", db, "--bulk-cancel", "legacy")
    try:
        assert requests.get(base_url + "/_emulator/stats", timeout=5).json() == {"held": 26, "cancelled": 15}
        message = requests.get(base_url + f"/v2/messages/{message_id}", headers=headers, timeout=5).json()
        assert message["labels"] == ["keep"] and message["queueName"] == "jobs"
        queues = requests.get(base_url + "/v2/queues", headers=headers, timeout=5).json()
        assert any(q["name"] == "jobs" for q in queues)
        # seeding again after the restart does not collide with the stored ids
        requests.post(base_url + "/_emulator/seed", json={"count": 40, "seed": 1}, timeout=10).raise_for_status()
        response = requests.delete(base_url + "/v2/messages", params={"label": "keep"}, headers=headers, timeout=5)
        assert response.json() == {"cancelled": 1}
    finally:
        assert _stop(proc) == 0


def test_in_process_db_file_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "inproc.sqlite")
    with QStashEmulator(token="t", db=db) as emu:
        ids = emu.add_messages([{"url": "https://e.com/a"}, {"url": "https://e.com/b"}])
        requests.delete(emu.base_url + f"/v2/messages/{ids[0]}", headers=emu.auth_headers, timeout=5)
    with QStashEmulator(token="t", db=db) as emu:
        assert emu.held_ids() == {ids[1]}
        assert emu.counts() == {"held": 1, "cancelled": 1}


def test_subprocess_runner_helpers() -> None:
    config = FaultConfig(rate_5xx=1.0, statuses_5xx=(503,))
    with QStashEmulator(token="sub", subprocess=True, faults=config, seed_messages=30, seed_random=2) as emu:
        assert emu.running
        assert emu.counts() == {"held": 30, "cancelled": 0}
        assert requests.get(emu.base_url + "/v2/queues", headers=emu.auth_headers, timeout=5).status_code == 503
        assert emu.get_faults() == config
        emu.set_faults(None)
        ids = emu.add_messages([{"url": "https://e.com/x", "label": "mine", "createdAt": 1}])
        assert emu.seed(10, seed=3) == 10
        assert ids[0] in emu.held_ids() and len(emu.held_ids()) == 41
        response = requests.delete(
            emu.base_url + "/v2/messages", params={"label": "mine", "count": "5"}, headers=emu.auth_headers, timeout=5
        )
        assert response.json() == {"cancelled": 1}
        assert [m["messageId"] for m in emu.messages("cancelled")] == ids
        assert emu.request_log()[-1]["query"] == [("label", "mine"), ("count", "5")]
        emu.clear_request_log()
        assert emu.request_log() == []
        with pytest.raises(ValueError):
            emu.add_messages([{"url": "nope"}])
        with pytest.raises(RuntimeError, match="in-process"):
            _ = emu.store
        emu.reset()
        assert emu.counts() == {"held": 0, "cancelled": 0}
        assert emu.get_faults() == config  # back to the initial faults
        proc = emu.process
    assert proc is not None and proc.returncode == 0
    assert not emu.running


def test_factory_builds_the_runner_class_and_checks_its_arguments() -> None:
    from qstash_emulator import InProcessEmulator, SubprocessEmulator

    assert type(QStashEmulator(token="x")) is InProcessEmulator
    assert type(QStashEmulator(token="x", subprocess=True)) is SubprocessEmulator
    assert type(SubprocessEmulator(token="x")) is SubprocessEmulator
    assert not InProcessEmulator(token="x").subprocess and SubprocessEmulator(token="x").subprocess
    with pytest.raises(ValueError, match="subprocess"):
        InProcessEmulator(token="x", subprocess=True)
    command = SubprocessEmulator(token="secret-token", bulk_cancel="legacy", action_rate=5, sync_wait=0.5).command()
    assert "secret-token" not in " ".join(command)
    assert command[command.index("--bulk-cancel") + 1] == "legacy"
    assert float(command[command.index("--action-rate") + 1]) == 5.0
    assert float(command[command.index("--sync-wait") + 1]) == 0.5


def test_in_process_runner_lifecycle() -> None:
    emu = QStashEmulator(token="x")
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    emu.start()
    try:
        base_url = emu.base_url
        assert base_url.startswith("http://127.0.0.1:")
        assert emu.running
        with pytest.raises(RuntimeError):
            emu.start()
    finally:
        emu.stop()
    emu.stop()  # idempotent
    assert not emu.running
    with pytest.raises(requests.ConnectionError):
        requests.get(base_url + "/_emulator/health", timeout=2)


def test_cli_fault_flags_override_faults_json() -> None:
    from qstash_emulator.cli import build_parser, faults_from_args

    parser = build_parser()
    assert faults_from_args(parser.parse_args([])) is None
    args = parser.parse_args(
        [
            "--faults-json",
            '{"rate_5xx": 0.5, "latency_ms": 10, "seed": 3}',
            "--fault-5xx",
            "0.25",
            "--fault-drop",
            "0.1",
        ]
    )
    assert faults_from_args(args) == FaultConfig(rate_5xx=0.25, rate_drop=0.1, latency_ms=10, seed=3)
    args = parser.parse_args(["--fault-partial", "1", "--fail-always-status", "400", "--latency-ms", "5"])
    assert faults_from_args(args) == FaultConfig(rate_partial=1.0, fail_always_status=400, latency_ms=5)


@pytest.mark.parametrize("in_subprocess", [False, True], ids=["in-process", "subprocess"])
def test_request_log_keeps_the_newest_request_log_size_requests(in_subprocess: bool) -> None:
    with QStashEmulator(token="t", subprocess=in_subprocess, request_log_size=3) as emu:
        for n in range(5):
            requests.delete(
                emu.base_url + "/v2/messages",
                params={"label": f"l{n}", "count": "1"},
                headers=emu.auth_headers,
                timeout=5,
            ).raise_for_status()
        assert [entry["query"] for entry in emu.request_log()] == [
            [("label", f"l{n}"), ("count", "1")] for n in (2, 3, 4)
        ]


def test_cli_refuses_a_request_log_size_below_one() -> None:
    result = _run_cli("--port", "0", "--request-log-size", "0")
    assert result.returncode == 2
    assert "--request-log-size: must be 1 or more, not 0" in result.stderr


@pytest.mark.parametrize("token", ["", "   "], ids=["empty", "blank"])
def test_cli_refuses_an_empty_token(token: str) -> None:
    result = _run_cli("--port", "0", "--token", token)
    assert result.returncode == 2
    assert "--token must not be empty" in result.stderr
    assert READY_PREFIX not in result.stdout


def test_cli_refuses_an_empty_token_from_the_environment() -> None:
    result = _run_cli("--port", "0", env=dict(os.environ, QSTASH_EMULATOR_TOKEN=""))
    assert result.returncode == 2
    assert "--token must not be empty" in result.stderr


@pytest.mark.parametrize("token", ["", " \t"], ids=["empty", "blank"])
def test_runner_and_app_refuse_an_empty_token(token: str) -> None:
    from qstash_emulator import MessageStore, create_app

    with pytest.raises(ValueError, match="token must not be empty"):
        QStashEmulator(token=token)
    store = MessageStore()
    try:
        with pytest.raises(ValueError, match="token must not be empty"):
            create_app(store, token)
    finally:
        store.close()


def test_cli_warns_when_bound_beyond_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qstash_emulator", "--host", "0.0.0.0", "--port", "0", "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(EMULATOR_ROOT)),
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(READY_PREFIX)
    finally:
        assert _stop(proc) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "warning: --host 0.0.0.0 is not a loopback address" in err
    assert "admin API under /_emulator/ has no authentication" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_no_warning_for_loopback_hosts(host: str) -> None:
    from qstash_emulator.cli import host_warning

    assert host_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_warning_for_other_hosts(host: str) -> None:
    from qstash_emulator.cli import host_warning

    warning = host_warning(host)
    assert warning is not None and host in warning and "no authentication" in warning


def test_cli_request_log_size_takes_plain_digits_only() -> None:
    result = _run_cli("--port", "0", "--request-log-size", "1_000")
    assert result.returncode == 2
    assert "--request-log-size" in result.stderr and "decimal digits only" in result.stderr
