"""Background jobs on real `manage.py chat_worker` processes against Postgres: a periodic job runs once
per period across two workers, a failing job is tried again with backoff, a job is cancelled or aborted,
a killed worker's job is run again by another, SIGTERM lets a running job finish, and a job's frame
reaches a tab on a live server through the relay's fan-out."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from conversations.jobs.control import job_cancel
from conversations.jobs.stalled import every
from conversations.owners import session_key_digest

from . import job_tasks
from .processes import DaphneServer, JobWorker, server_env
from .servers import ChatClient, page_session_headers
from .standin_control import StandIn

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def queue_emptied(transactional_db: None) -> None:
    """Each test starts with no job, worker or periodic period of another's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers,"
            " procrastinate_workers CASCADE"
        )


@pytest.fixture
def worker_env(standin: StandIn) -> Callable[..., dict[str, str]]:
    """A worker's environment on the test database; the upkeep that touches files or the API is off."""

    def env(**extra: str) -> dict[str, str]:
        quiet = {
            "CHAT_RETENTION_SCHEDULE": "",
            "CHAT_ATTACHMENTS_CLEANUP_SCHEDULE": "",
            "CHAT_MODELS_SYNC_SCHEDULE": "",
        }
        return server_env(
            database_name=settings.DATABASES["default"]["NAME"],
            redis_url=settings.REDIS_URL,
            standin_url=standin.url,
            **{**quiet, **extra},
        )

    return env


@pytest.fixture
def workers(log_dir: Path) -> Iterator[list[JobWorker]]:
    started: list[JobWorker] = []
    yield started
    for worker in started:
        worker.stop()


def worker_start(workers: list[JobWorker], log_dir: Path, env: dict[str, str]) -> JobWorker:
    worker = JobWorker(f"worker-{len(workers)}", log_dir, env=env).start()
    workers.append(worker)
    return worker


def until(predicate: Callable[[], Any], wait: float = 30, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"not within {wait:g} s")


def job(job_id: int) -> ProcrastinateJob:
    return ProcrastinateJob.objects.get(pk=job_id)


def starts(job_id: int) -> list[Any]:
    return list(
        ProcrastinateEvent.objects.filter(job_id=job_id, type="started")
        .order_by("at")
        .values_list("at", flat=True)
    )


def test_a_periodic_job_runs_once_per_period_across_two_workers(workers, log_dir, worker_env) -> None:
    # Every second; at DEBUG, a worker logs each period the other one deferred first.
    env = worker_env(CHAT_RETENTION_SCHEDULE="* * * * * *", CHAT_LOG_LEVEL="DEBUG")
    worker_start(workers, log_dir, env)
    worker_start(workers, log_dir, env)
    retention = ProcrastinateJob.objects.filter(task_name="chat.retention_purge")
    until(lambda: retention.filter(status="succeeded").count() >= 5)
    for worker in workers:
        worker.stop()

    periods = Counter(job.args["timestamp"] for job in retention)
    assert periods
    assert set(periods.values()) == {1}, periods  # one job per second, whatever proposed it
    assert all(status == "succeeded" for status in retention.values_list("status", flat=True))
    assert not ProcrastinateJob.objects.filter(task_name="chat.attachments_cleanup").exists()  # turned off
    # Both proposed the periods' jobs, and the lock turned one of them away each time.
    assert all("Periodic job chat.retention_purge" in worker.output() for worker in workers)
    assert any("already deferred" in worker.output() for worker in workers)


@pytest.mark.parametrize(
    ("seconds", "cron"), [(10, "* * * * * */10"), (0.5, "* * * * * */1"), (600, "*/10 * * * *")]
)
def test_the_stalled_jobs_check_runs_every_third_of_the_stalled_time(seconds, cron) -> None:
    assert every(seconds) == cron


def test_a_failing_job_is_tried_again_with_backoff_then_fails(workers, log_dir, worker_env) -> None:
    worker_start(workers, log_dir, worker_env())
    job_id = job_tasks.always_fails.defer()

    until(lambda: job(job_id).status == "failed")
    runs = starts(job_id)
    assert len(runs) == 3
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(runs, runs[1:], strict=False)]
    assert gaps[0] >= 2, gaps  # 2 s,
    assert gaps[1] >= 4, gaps  # then 4 s


def test_a_waiting_job_is_cancelled_and_a_running_one_aborted(workers, log_dir, worker_env) -> None:
    worker_start(workers, log_dir, worker_env())
    later = job_tasks.sleeps.configure(schedule_in={"seconds": 30}).defer(seconds=0)
    running = job_tasks.sleeps.defer(seconds=120)
    until(lambda: job(running).status == "doing")

    assert job_cancel(later)
    assert job(later).status == "cancelled"
    assert job_cancel(running)
    until(lambda: job(running).status == "aborted", wait=20)  # the worker looks every 5 s
    assert not starts(later)
    assert not job_cancel(running)  # already ended


def test_a_killed_workers_job_is_run_again_by_another(workers, log_dir, worker_env) -> None:
    env = worker_env(CHAT_WORKER_STALLED_SECONDS="3")
    worker_start(workers, log_dir, env)
    worker_start(workers, log_dir, env)
    job_id = job_tasks.sleeps.defer(seconds=5)
    until(lambda: job(job_id).status == "doing")
    first_worker = job(job_id).worker_id
    running = until(lambda: next((w for w in workers if f"tests.sleeps[{job_id}]" in w.output()), None))
    other = next(worker for worker in workers if worker is not running)
    running.signal(signal.SIGKILL)
    running.wait(10)

    until(lambda: job(job_id).status == "succeeded", wait=30)
    assert len(starts(job_id)) == 2
    assert ProcrastinateEvent.objects.filter(job_id=job_id, type="succeeded").count() == 1
    assert job(job_id).worker_id != first_worker
    assert "job of a dead worker queued again" in other.output()


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(workers, log_dir, worker_env) -> None:
    worker = worker_start(workers, log_dir, worker_env())
    job_id = job_tasks.sleeps.defer(seconds=3)
    until(lambda: job(job_id).status == "doing")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert job(job_id).status == "succeeded"
    assert "Stop requested" in worker.output()


def test_a_job_running_past_the_drain_is_aborted_and_queued_again(workers, log_dir, worker_env) -> None:
    worker = worker_start(workers, log_dir, worker_env(CHAT_WORKER_DRAIN_SECONDS="1"))
    job_id = job_tasks.sleeps_retried.defer(seconds=120)
    until(lambda: job(job_id).status == "doing")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert job(job_id).status == "todo"  # for another worker, after its retry's wait
    assert ProcrastinateEvent.objects.filter(job_id=job_id, type="deferred_for_retry").exists()


@pytest.mark.parametrize("event_bus", ["redis", "channels-redis"])
async def test_a_jobs_frame_reaches_a_tab_on_a_live_server(
    event_bus, workers, log_dir, worker_env, http: aiohttp.ClientSession
) -> None:
    server = DaphneServer("server", worker_env(CHAT_EVENT_BUS=event_bus), log_dir).start()
    try:
        await sync_to_async(worker_start)(workers, log_dir, worker_env(CHAT_EVENT_BUS=event_bus))
        tab = await ChatClient(http, server, "job-told").connect()
        cookie = (await page_session_headers(http, server.origin))["Cookie"].removeprefix("sessionid=")
        await sync_to_async(job_tasks.title_tell.defer)(
            owner_key=f"s:{session_key_digest(cookie)}", session_id="job-told", title="Told by a job"
        )
        assert await tab.receive(wait=20) == {"type": "title", "title": "Told by a job"}
        await tab.close()
    finally:
        server.stop()
