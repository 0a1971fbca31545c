"""The job store on real SQLite: atomic claims, serialisation, recovery, cancel, prune, submit checks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolforge import Forge
from toolforge.cli.app import app
from toolforge.cli.jobs import parse_duration
from toolforge.db import connect
from toolforge.errors import (
    ArgumentError,
    JobCancelled,
    JobWaitTimeout,
    NotFoundError,
    ToolFailed,
    UsageError,
)
from toolforge.jobs import JobStatus, NewJob, Outcome, SQLiteJobStore, result_of
from toolforge.jobs.models import OUTPUT_CAP
from toolforge.procs import make_worker_id, worker_dead_here


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def store(db_path: Path):
    s = SQLiteJobStore(db_path)
    yield s
    s.close()


def new(tool: str = "t", **kw) -> NewJob:
    return NewJob(tool=tool, version=1, args=kw.pop("args", {"n": 1}), **kw)


def test_submit_get_list_counts(store: SQLiteJobStore) -> None:
    a = store.submit(new("alpha"))
    b = store.submit(new("beta", priority=5))
    assert a.status is JobStatus.queued and a.attempts == 0 and a.args == {"n": 1}
    assert store.get(a.id).tool == "alpha"
    assert [j.id for j in store.list()] == [b.id, a.id]
    assert [j.id for j in store.list(tool="alpha")] == [a.id]
    assert store.list(status=JobStatus.running) == []
    assert store.counts()["queued"] == 2
    assert [e.event for e in store.events(a.id)] == ["queued"]


def test_unknown_job_id_is_a_usage_error(store: SQLiteJobStore) -> None:
    with pytest.raises(NotFoundError) as err:
        store.get("nope")
    assert err.value.exit_code == 2
    with pytest.raises(NotFoundError):
        store.cancel("nope")


def test_claim_takes_priority_then_submission_order(store: SQLiteJobStore) -> None:
    low = store.submit(new(priority=0))
    high = store.submit(new(priority=9))
    low2 = store.submit(new(priority=0))
    order = [store.claim("w").id for _ in range(3)]
    assert order == [high.id, low.id, low2.id]
    assert store.claim("w") is None
    job = store.get(high.id)
    assert job.status is JobStatus.running and job.attempts == 1 and job.worker_id == "w"
    assert job.started_at is not None


def test_two_connections_never_claim_the_same_job(db_path: Path, store: SQLiteJobStore) -> None:
    ids = {store.submit(new()).id for _ in range(200)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        own = SQLiteJobStore(db_path)  # its own connection: SQLite's lock, not ours, must decide
        try:
            while (job := own.claim(name)) is not None:
                with lock:
                    claimed.append((job.id, name))
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for i, _ in claimed) == sorted(ids)  # every job once, none twice
    assert {store.get(i).worker_id for i, _ in claimed} == {w for _, w in claimed}
    assert all(store.get(i).attempts == 1 for i in ids)


def test_claims_from_separate_processes_are_exclusive(db_path: Path, store: SQLiteJobStore) -> None:
    ids = {store.submit(new()).id for _ in range(120)}
    script = (
        "import sys, json\n"
        "from toolforge.jobs import SQLiteJobStore\n"
        "s = SQLiteJobStore(sys.argv[1]); got = []\n"
        "while (j := s.claim(sys.argv[2])) is not None: got.append(j.id)\n"
        "print(json.dumps(got))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(db_path), f"p{i}"], stdout=subprocess.PIPE, text=True
        )
        for i in range(3)
    ]
    got = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    flat = [i for g in got for i in g]
    assert sorted(flat) == sorted(ids)


def test_stateful_jobs_on_one_namespace_are_serialised(store: SQLiteJobStore) -> None:
    first = store.submit(new("counter", serial_key="counter/a"))
    second = store.submit(new("counter", serial_key="counter/a"))
    other_ns = store.submit(new("counter", serial_key="counter/b"))
    assert store.claim("w1").id == first.id
    assert store.claim("w2").id == other_ns.id  # a different namespace is free to run
    assert store.claim("w2") is None  # second waits for first
    assert store.finish(first.id, "w1", Outcome(JobStatus.succeeded, result={"count": 1}))
    assert store.claim("w2").id == second.id


def test_finish_records_outcome_and_guards_the_owner(store: SQLiteJobStore) -> None:
    job = store.submit(new())
    store.claim("w1")
    big = "x" * (OUTPUT_CAP + 100)
    assert not store.finish(job.id, "someone-else", Outcome(JobStatus.succeeded, result=1))
    assert store.finish(
        job.id,
        "w1",
        Outcome(
            JobStatus.failed,
            error={"type": "ValueError", "message": "bad"},
            stdout=big,
            duration_ms=12.5,
        ),
    )
    done = store.get(job.id)
    assert done.status is JobStatus.failed and done.finished_at is not None
    assert done.error == {"type": "ValueError", "message": "bad"}
    assert done.truncated and len(done.stdout) < len(big) and "characters cut" in done.stdout
    assert not store.finish(job.id, "w1", Outcome(JobStatus.succeeded))  # finished stays finished
    with pytest.raises(ToolFailed, match="ValueError: bad"):
        result_of(done)


def test_recover_requeues_then_fails_after_max_attempts(store: SQLiteJobStore) -> None:
    job = store.submit(new(max_attempts=2))
    dead = {"w1", "w2"}
    store.claim("w1")
    assert [j.id for j in store.recover(stale_after_s=60, is_dead=dead.__contains__)] == [job.id]
    requeued = store.get(job.id)
    assert (
        requeued.status is JobStatus.queued
        and requeued.attempts == 1
        and requeued.worker_id is None
    )
    store.claim("w2")
    store.recover(stale_after_s=60, is_dead=dead.__contains__)
    failed = store.get(job.id)
    assert failed.status is JobStatus.failed and failed.attempts == 2
    assert (
        "worker w2 died" in failed.error["message"]
        and "gave up after 2 of 2 attempts" in failed.error["message"]
    )
    assert [e.event for e in store.events(job.id)] == [
        "queued",
        "started",
        "requeued",
        "started",
        "failed",
    ]


def test_recover_by_stale_heartbeat_leaves_live_workers_alone(store: SQLiteJobStore) -> None:
    fresh = store.submit(new())
    stale = store.submit(new())
    store.claim("alive")
    store.claim("frozen")
    time.sleep(0.3)
    store.heartbeat("alive", [fresh.id])
    lost = store.recover(stale_after_s=0.2, is_dead=lambda w: False)
    assert [j.id for j in lost] == [stale.id]
    assert store.get(fresh.id).status is JobStatus.running
    assert "stopped heartbeating" in store.events(stale.id)[-1].detail


def test_cancel_queued_running_and_finished(store: SQLiteJobStore) -> None:
    queued, running, done = (store.submit(new()) for _ in range(3))
    store.claim("w")  # queued → running for the first id claimed
    first_claimed = queued.id
    assert store.cancel(first_claimed).cancel_requested
    assert store.get(first_claimed).status is JobStatus.running  # the worker kills it
    assert store.cancel_requested([first_claimed, running.id]) == {first_claimed}
    now_cancelled = store.cancel(running.id)
    assert now_cancelled.status is JobStatus.cancelled and now_cancelled.finished_at is not None
    assert store.claim("w").id == done.id
    store.finish(done.id, "w", Outcome(JobStatus.succeeded, result=3))
    assert store.cancel(done.id).status is JobStatus.succeeded  # no-op on a finished job
    with pytest.raises(JobCancelled) as err:
        result_of(now_cancelled)
    assert err.value.exit_code == 5


def test_retry_requeues_only_unsuccessful_jobs(store: SQLiteJobStore) -> None:
    job = store.submit(new(max_attempts=1))
    store.claim("w")
    store.finish(
        job.id,
        "w",
        Outcome(JobStatus.timed_out, error={"type": "ToolTimeout", "message": "slow"}, stdout="x"),
    )
    again = store.retry(job.id)
    assert (again.status, again.attempts, again.error, again.stdout, again.finished_at) == (
        JobStatus.queued,
        0,
        None,
        "",
        None,
    )
    with pytest.raises(UsageError):
        store.retry(job.id)  # queued: nothing to retry
    assert store.claim("w").id == job.id


def test_cancel_of_a_job_whose_worker_died_ends_cancelled(store: SQLiteJobStore) -> None:
    job = store.submit(new())
    store.claim("w")
    store.cancel(job.id)
    store.recover(stale_after_s=60, is_dead=lambda w: True)
    assert store.get(job.id).status is JobStatus.cancelled


def test_release_refunds_or_delays(store: SQLiteJobStore) -> None:
    job = store.submit(new())
    store.claim("w")
    back = store.release(job.id, "w", "worker stopped", refund_attempt=True)
    assert back.status is JobStatus.queued and back.attempts == 0
    store.claim("w")
    later = store.release(job.id, "w", "docker down", delay_s=30)
    assert later.status is JobStatus.queued and later.run_after > time.time() + 20
    assert store.claim("w") is None  # not before run_after


def test_prune_deletes_only_old_finished_jobs(db_path: Path, store: SQLiteJobStore) -> None:
    old_done, new_done, old_queued = (store.submit(new()) for _ in range(3))
    for job in (old_done, new_done):
        store.claim("w")
        store.finish(job.id, "w", Outcome(JobStatus.succeeded, result=1))
    conn = connect(db_path)
    conn.execute(
        "UPDATE jobs SET finished_at = ?, queued_at = ? WHERE id IN (?, ?)",
        (time.time() - 8 * 86400, time.time() - 8 * 86400, old_done.id, old_queued.id),
    )
    conn.close()
    assert store.prune(7 * 86400) == 1
    with pytest.raises(NotFoundError):
        store.get(old_done.id)
    assert store.events(old_done.id) == []
    assert store.get(new_done.id).status is JobStatus.succeeded
    assert store.get(old_queued.id).status is JobStatus.queued


def test_a_killed_process_is_a_dead_worker() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        worker_id = make_worker_id(proc.pid)
        assert not worker_dead_here(worker_id)
        proc.kill()
        deadline = time.monotonic() + 10
        while not worker_dead_here(worker_id) and time.monotonic() < deadline:
            time.sleep(0.01)  # the signal lands asynchronously
        assert worker_dead_here(worker_id)  # a zombie (not yet reaped) already counts as dead
        assert proc.poll() is not None
    finally:
        proc.wait()
    assert worker_dead_here(worker_id)
    assert not worker_dead_here(make_worker_id())
    assert not worker_dead_here("other-host:1:1")  # only its heartbeat can tell


def test_parse_duration() -> None:
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("90") == 90
    assert parse_duration("1.5h") == 5400
    with pytest.raises(UsageError):
        parse_duration("soon")


# -- Forge.submit validates before queueing ----------------------------------------------------
@pytest.fixture
def forge(example):
    f = Forge()
    f.add(example("word-count"), test=False)
    f.add(example("counter"), test=False)
    yield f
    f.close()


def test_submit_rejects_bad_input_and_queues_nothing(forge: Forge) -> None:
    with pytest.raises(NotFoundError) as unknown:
        forge.submit("no-such-tool", {})
    with pytest.raises(ArgumentError) as bad:
        forge.submit("word-count", {"txt": "a"})
    with pytest.raises(UsageError):
        forge.submit("word-count", {"text": "a"}, timeout_s=0)
    with pytest.raises(UsageError):
        forge.submit("counter", {}, state_ns="../etc")
    with pytest.raises(UsageError):
        forge.submit("word-count", {"text": "a"}, state_ns="ns1")  # not a stateful tool
    assert unknown.value.exit_code == bad.value.exit_code == 2
    assert forge.jobs.list() == []


def test_submit_pins_version_and_serialises_stateful_tools(forge: Forge) -> None:
    handle = forge.submit("word-count", {"text": "a b"}, priority=3, timeout_s=5)
    job = handle.info()
    assert (job.tool, job.version, job.priority, job.timeout_s, job.serial_key) == (
        "word-count",
        1,
        3,
        5,
        None,
    )
    assert handle.status() == "queued" and forge.job(handle.id).id == handle.id
    assert forge.submit("counter", {"by": 2}, state_ns="ns1").info().serial_key == "counter/ns1"
    with pytest.raises(JobWaitTimeout) as err:
        handle.wait(timeout=0.1)
    assert err.value.exit_code == 124
    assert handle.cancel() == "cancelled"
    with pytest.raises(NotFoundError):
        forge.job("missing")


def test_cli_jobs_list_status_cancel_prune(forge: Forge) -> None:
    job_id = forge.submit("word-count", {"text": "x"}).id
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0
    assert [(j["id"], j["status"]) for j in json.loads(listed.stdout)] == [(job_id, "queued")]
    shown = json.loads(runner.invoke(app, ["jobs", "status", job_id, "--json"]).stdout)
    assert {
        "id",
        "tool",
        "status",
        "result",
        "error",
        "attempts",
        "queued_at",
        "started_at",
        "finished_at",
    } <= set(shown)
    assert runner.invoke(app, ["jobs", "list", "--status", "bogus"]).exit_code != 0
    cancelled = runner.invoke(app, ["jobs", "cancel", job_id])
    assert cancelled.exit_code == 0 and f"Cancelled job {job_id}" in cancelled.stdout
    waited = runner.invoke(app, ["jobs", "wait", job_id, "--json"])
    assert waited.exit_code == 5 and json.loads(waited.stdout)["status"] == "cancelled"
    logs = runner.invoke(app, ["jobs", "logs", job_id])
    assert "queued" in logs.stdout and "cancelled while queued" in logs.stdout
    pruned = runner.invoke(app, ["jobs", "prune", "--older-than", "0s", "--json"])
    assert json.loads(pruned.stdout) == {"removed": 1}
    assert runner.invoke(app, ["jobs", "status", job_id]).exit_code != 0


def test_cli_run_async_rejects_bad_input_with_exit_2(
    forge: Forge, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolforge.cli.app import main

    for argv in (
        ["run", "no-such-tool", "--async"],
        ["run", "word-count", "--async", "--arg", "txt=a"],
        ["jobs", "wait", "missing-id"],
        ["jobs", "cancel", "missing-id"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2, argv
        assert "Error:" in capsys.readouterr().err
    assert forge.jobs.list() == []
