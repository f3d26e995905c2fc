"""Several processes optimise one Optuna study at once, on SQLite and on a real PostgreSQL server.

Four worker processes (``optuna_reliability_worker.py --processes 4``, forked after the imports) run MobsterSampler + MobsterPruner on
the same study. Afterwards, from storage alone: every trial is recorded once (numbers 0..N-1,
one trial id each), every one finished COMPLETE or PRUNED, no worker let a database error out,
and every pruning decision is one the rung rule can produce given what the trial could have
seen (``rung_audit``: storage has no report timestamps, so the set of rung values a decision
saw is bounded by the trials' start and end times; the check is exact where trials did not
overlap and the strongest one storage supports where they did).

PostgreSQL: a session fixture finds ``initdb``/``pg_ctl`` (Debian: /usr/lib/postgresql/*/bin),
installs the ``postgresql`` package with apt-get when missing and running as root (.ci/run
installs it before the tests, so usually it only starts it), creates a throw-away cluster in a
temporary directory (as the ``postgres`` system user when running as root: initdb refuses
root), starts it on 127.0.0.1 with a free port and its socket in that directory, and stops and
removes it at the end. The test is skipped, with the reason printed, only where PostgreSQL
cannot be installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from rung_audit import audit_pruning

optuna.logging.set_verbosity(optuna.logging.WARNING)
TESTS = Path(__file__).parent
WORKER = TESTS / "optuna_reliability_worker.py"
PROCESSES = 4
TRIALS_PER_PROCESS = 3
LEVELS = [1, 3, 9]  # MobsterPruner(max_resource=9), reduction_factor 3, one bracket
ERROR_WORDS = ("Traceback", "OperationalError", "IntegrityError", "database is locked", "psycopg2.errors")


# ----- PostgreSQL -----------------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if os.access(Path(folder) / "pg_ctl", os.X_OK) and os.access(Path(folder) / "initdb", os.X_OK):
            return Path(folder)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    return None


def _install_postgres() -> str | None:
    """Install PostgreSQL with apt-get; the reason it cannot be, or ``None`` once installed."""
    if os.geteuid() != 0:
        return "PostgreSQL is not installed and installing it needs root"
    if shutil.which("apt-get") is None:
        return "PostgreSQL is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"`{' '.join(command)}` failed: {error}"
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}"
    return None


def _postgres_user() -> pwd.struct_passwd:
    """The ``postgres`` system user, created if missing (Debian's package creates it)."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "postgres"], check=True)
        return pwd.getpwnam("postgres")


def _as_postgres_user(command: list[str]) -> list[str]:
    """Run as the ``postgres`` system user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return command
    _postgres_user()
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *command]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in command)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _print(request: pytest.FixtureRequest, message: str) -> None:
    """Print past pytest's output capture, so a skip reason shows even without ``-rs``."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(message, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{message}", file=sys.stderr)


@pytest.fixture(scope="session")
def postgres_url(request):
    bindir = _postgres_bindir()
    if bindir is None:
        reason = _install_postgres()
        bindir = _postgres_bindir()
        if bindir is None:
            reason = f"PostgreSQL cannot be installed here: {reason or 'no initdb/pg_ctl after installing'}"
            _print(request, reason)
            pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="mobster-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        user = _postgres_user()
        os.chown(root, user.pw_uid, user.pw_gid)
    port = _free_port()

    def run(*command: str) -> None:
        done = subprocess.run(_as_postgres_user(list(command)), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}\n{server_log}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=60"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mobster")
        connection.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mobster"
    finally:
        subprocess.run(
            _as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


# ----- the test -------------------------------------------------------------------------------


def optimise_concurrently(storage: str, study_name: str, *, plain_rule: bool) -> list[optuna.trial.FrozenTrial]:
    optuna.create_study(study_name=study_name, storage=storage)
    command = [sys.executable, str(WORKER), storage, study_name, "--trials", str(TRIALS_PER_PROCESS)]
    command += ["--step-sleep", "0.02", "--processes", str(PROCESSES)] + (["--plain-rule"] if plain_rule else [])
    done = subprocess.run(command, cwd=TESTS, capture_output=True, text=True, timeout=500)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output  # a worker that raised exits non-zero
    assert not any(word in output for word in ERROR_WORDS), output
    return optuna.load_study(study_name=study_name, storage=storage).get_trials()


def check_shared_study(trials: list[optuna.trial.FrozenTrial], *, plain_rule: bool) -> None:
    total = PROCESSES * TRIALS_PER_PROCESS
    assert sorted(t.number for t in trials) == list(range(total))  # each trial recorded once
    assert len({t._trial_id for t in trials}) == total
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(t.params.keys() == {"x", "lr", "n", "kind"} for t in trials)
    for trial in trials:  # one report per step, up to the step the trial stopped at
        assert sorted(trial.intermediate_values) == list(range(1, trial.last_step + 1))
    # The workers really ran at the same time (otherwise this would test nothing new).
    overlapping = sum(
        a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
        for i, a in enumerate(trials)
        for b in trials[i + 1 :]
    )
    assert overlapping > 0
    # With the default rescue only prunes follow the rule alone; the plain rule replays exactly.
    assert audit_pruning(trials, LEVELS, 3, rescues=not plain_rule) == []
    assert any(t.state == TrialState.PRUNED for t in trials)


@pytest.mark.slow
def test_four_processes_share_one_sqlite_file(tmp_path):
    trials = optimise_concurrently(f"sqlite:///{tmp_path / 'shared.db'}", "sqlite-shared", plain_rule=False)
    check_shared_study(trials, plain_rule=False)


@pytest.mark.slow
def test_four_processes_share_one_postgresql_database(postgres_url):
    # The plain rule here, so that one shared study's decisions are all replayed exactly.
    trials = optimise_concurrently(postgres_url, "postgres-shared", plain_rule=True)
    check_shared_study(trials, plain_rule=True)


@pytest.mark.slow
def test_two_processes_share_a_multi_objective_study_on_postgresql(postgres_url):
    from test_optuna_multiobjective import check_mo_study

    optuna.create_study(study_name="postgres-mo", storage=postgres_url, directions=["minimize", "minimize"])
    command = [sys.executable, str(TESTS / "optuna_worker.py"), postgres_url, "postgres-mo", "8", "multi"]
    workers = [subprocess.Popen(command, cwd=TESTS, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    assert not any(word in e for e in errors for word in ERROR_WORDS), errors
    check_mo_study(optuna.load_study(study_name="postgres-mo", storage=postgres_url), 16)
