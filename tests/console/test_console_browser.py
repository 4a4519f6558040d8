"""The web console in a real browser (headless Chromium through Selenium) against a real
`evstore serve` process, PostgreSQL, Redis and `dramatiq` worker processes."""

from __future__ import annotations

from typing import Any

import pytest
from evstore.workers.replay import ReplayConfig
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from evstore import EventRecord
from tests.integration.workers.conftest import effects, seed

from .conftest import PASSWORD, screenshot

pytestmark = pytest.mark.slow
WAIT = 60


def _text(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def _wait_text(driver: Any, css: str, wanted: str, timeout: float = WAIT) -> None:
    # htmx replaces the progress block every second: an element may go stale while read.
    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: wanted in " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, css)))


def _submit(driver: Any, element_id: str) -> None:
    """Press a form's button and wait until the browser has left the page."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, element_id).click()

    def left(_: Any) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # Chromium may answer mid-navigation that the node left the document
            # instead of "stale element" (seen in a new user's run): the same thing.
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    WebDriverWait(driver, WAIT).until(left)


def _login(driver: Any, url: str, name: str) -> None:
    driver.get(url + "/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "secret").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-button").click()
    _wait_text(driver, "#operator", name, 10)


def _forge(driver: Any, action: str, fields: dict[str, str]) -> None:
    """Submit a form the page did not make: same cookies, no CSRF token."""
    driver.execute_script("""
        const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        for (const [k, v] of Object.entries(arguments[1])) {
          const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;
          f.appendChild(i);
        }
        document.body.appendChild(f); f.submit();""", action, fields)
    _wait_text(driver, "#message-title", "Refused", 10)


def _batches(store: Any, job_id: int) -> list[tuple[int, str, int]]:
    from evstore.core.jobs.repository import JobRepository

    return [(b.number, b.status, b.attempts) for b in JobRepository(store).batches(job_id)]


def _actions(store: Any) -> list[tuple[str, str, str, str]]:
    with store.connection() as conn:
        return [tuple(r) for r in conn.execute(
            f"SELECT operator, action, target, outcome FROM {store.table('console_actions')} "
            "ORDER BY action_id").fetchall()]


def test_failed_batch_shown_refused_without_login_or_csrf_then_requeue_succeeds(
    jobs_store, service, start_workers, console_url, browser,
) -> None:
    # Given a replay with one poison event, failed on real workers
    seed(jobs_store, 60, 3, data=lambda s, i: {"poison": s == 17 and i == 2})
    poison = jobs_store.read_stream("User-17")[2]
    workers = start_workers(processes=1, threads=2)
    job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=30))
    assert service.engine.wait(job_id, timeout=120).status == "failed"
    before = _batches(jobs_store, job_id)
    # When anyone opens the job's page: the failed batch is there with its event id and error
    browser.get(f"{console_url}/jobs/{job_id}")
    _wait_text(browser, "tr.batch-failed .event-id", str(poison.event_id))
    assert "cannot digest poison in User-17" in _text(browser, "tr.batch-failed")
    assert str(poison.event_id) in _text(browser, "#errors")
    assert _text(browser, "#job-status") == "failed"
    screenshot(browser, "job-failed")
    # An anonymous visitor who presses Requeue is refused, and nothing changes
    browser.find_element(By.ID, "requeue-all").click()
    _wait_text(browser, "#message-title", "Login needed", 10)
    assert _batches(jobs_store, job_id) == before
    assert service.engine.get(job_id).status == "failed"
    # A logged-in operator's forged form (no CSRF token) is refused too, and changes nothing
    _login(browser, console_url, "ada")
    _forge(browser, f"{console_url}/jobs/{job_id}/requeue", {"batch": ""})
    _forge(browser, f"{console_url}/jobs/{job_id}/cancel", {"csrf_token": "guessed"})
    assert _batches(jobs_store, job_id) == before
    assert service.engine.get(job_id).status == "failed"
    # When the handler is fixed and the operator presses Requeue
    workers.stop()
    start_workers(processes=1, threads=2, EVSTORE_TEST_FIXED="1")
    browser.get(f"{console_url}/jobs/{job_id}")
    browser.find_element(By.ID, "requeue-all").click()
    # Then the page's live progress (htmx polling) shows the job succeed
    _wait_text(browser, "#job-status", "succeeded")
    assert service.engine.get(job_id).status == "succeeded"
    assert effects(jobs_store) == [(180, 180)]
    screenshot(browser, "job-succeeded")
    # And every attempt is on record: who, what, the outcome
    assert _actions(jobs_store) == [
        ("anonymous", "requeue", f"job {job_id}", "refused"),
        ("ada", "login", "console", "done"),
        ("ada", "requeue", f"job {job_id}", "refused"),
        ("ada", "cancel", f"job {job_id}", "refused"),
        ("ada", "requeue", f"job {job_id}", "done"),
    ]
    browser.get(f"{console_url}/actions")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.action")) == 5
    screenshot(browser, "actions")
    browser.get(f"{console_url}/jobs")
    screenshot(browser, "jobs")
    browser.get(console_url + "/")
    assert "failed batches" in _text(browser, ".cards")
    screenshot(browser, "overview")


def test_cancel_stops_a_running_job_and_a_stream_shows_its_events_in_order(
    jobs_store, service, start_workers, console_url, browser,
) -> None:
    # Given a slow replay running on one worker thread
    seed(jobs_store, 40, 5)
    start_workers(processes=1, threads=1, EVSTORE_TEST_DELAY="0.05")
    job_id = service.start(ReplayConfig(handler_names=["slow_record"], batch_size=10))
    _login(browser, console_url, "grace")
    browser.get(f"{console_url}/jobs/{job_id}")
    _wait_text(browser, "#job-status", "running")
    # When the operator presses Cancel
    browser.find_element(By.ID, "cancel").click()
    # Then the job stops: the running batch finishes, the others never start
    _wait_text(browser, "#job-status", "cancelled")
    job = service.engine.get(job_id)
    assert job.status == "cancelled"
    assert job.batches_cancelled >= 1 and job.items_done < job.items_total
    statuses = {s for _, s, _ in _batches(jobs_store, job_id)}
    assert statuses <= {"succeeded", "cancelled"}
    done = effects(jobs_store)[0][0]
    assert done == job.items_done < 200
    # Given a stream whose events carry a declared personal field (data.email)
    jobs_store.append_events("Profile-7", [
        EventRecord("7", "Profile", "ProfileUpdated", {"email": f"p{i}@example.com", "step": i},
                    aggregate_version=i) for i in range(1, 8)])
    # When the operator looks it up (by POST: the id never goes in a URL)
    browser.get(f"{console_url}/streams")
    browser.find_element(By.ID, "stream-id").send_keys("Profile-7")
    browser.find_element(By.ID, "look-up").click()
    _wait_text(browser, "#stream-name", "Profile-7", 10)
    assert "Profile-7" not in browser.current_url
    # Then its events are shown in order, as JSON, with the e-mail masked
    versions = [int(e.text) for e in browser.find_elements(By.CSS_SELECTOR, "tr.event td.version")]
    assert versions == [1, 2, 3, 4, 5, 6, 7]
    steps = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.data")]
    assert [f'"step": {i}' in t for i, t in enumerate(steps, start=1)] == [True] * 7
    assert "@example.com" not in browser.page_source
    assert "personal data" in steps[0]
    screenshot(browser, "stream")
    # And the view is in the access log (issue 11) under the operator's name
    from evstore.core.privacy.access_log import entries_about

    WebDriverWait(browser, 10, poll_frequency=0.1).until(  # the serve process writes it within 200 ms
        lambda _d: any(e["accessor"] == "console:grace" for e in entries_about(jobs_store, "7")))
    # And its checksums verify
    browser.find_element(By.ID, "verify").click()
    _wait_text(browser, "#verified", "ok: 7 events verified", 20)
    assert ("grace", "cancel", f"job {job_id}", "done") in _actions(jobs_store)
    # The Queries page (issue 12's EventQueryService): criteria by POST, the plan, masked results
    browser.get(f"{console_url}/queries")
    browser.find_element(By.ID, "q-event-types").send_keys("ProfileUpdated")
    _submit(browser, "run-query")
    assert _text(browser, "#plan")
    datas = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tr.result pre.data")]
    assert [f'"step": {i}' in t for i, t in enumerate(datas, start=1)] == [True] * 7
    assert "@example.com" not in browser.page_source and "ProfileUpdated" not in browser.current_url
    screenshot(browser, "queries")


def test_archive_run_verified_and_restored_schedules_and_a_stopped_consumer_reset(
    jobs_store, console_url, browser,
) -> None:
    from evstore.core.archive import EventArchiver
    from evstore.core.reader.checkpoints import CheckpointStore
    from evstore.core.store.persistence import START

    from tests.integration.archive.helpers import count, populate

    # Given events of past months archived by a policy (deleted from PostgreSQL)
    populate(jobs_store, [2, 1], streams=2, per_stream=5)
    result = EventArchiver(jobs_store).archive("old-months")
    assert (result.run.status, count(jobs_store)) == ("completed", 0)
    run_id = result.run.run_id
    # And a stopped consumer group at the start of the store
    cps = CheckpointStore(jobs_store)
    cps.ensure("projector", "reports", 2)
    # When anyone opens the archive run, its segments are listed, and Verify checks them
    browser.get(f"{console_url}/archives")
    browser.find_element(By.LINK_TEXT, str(run_id)).click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#segments tr")) == 1 + 3
    browser.find_element(By.ID, "verify").click()
    _wait_text(browser, "#verified", "ok: 20 events in 3 segment(s) verified", 20)
    screenshot(browser, "archive-run")
    # An anonymous Restore is refused and restores nothing
    browser.find_element(By.ID, "restore").click()
    _wait_text(browser, "#message-title", "Login needed", 10)
    assert count(jobs_store) == 0
    # An operator's Restore brings the 20 events back
    _login(browser, console_url, "linus")
    browser.get(f"{console_url}/archives/{run_id}")
    _submit(browser, "restore")
    _wait_text(browser, "h1", "Archive run", 20)
    assert count(jobs_store) == 20
    # Schedules: the policy's schedule with its next firing
    browser.get(f"{console_url}/schedules")
    assert "archive:old-months" in _text(browser, "#schedules")
    screenshot(browser, "schedules")
    # Consumers: the stopped group is 20 events behind; a reset to the head catches it up
    browser.get(f"{console_url}/consumers")
    assert "projector" in _text(browser, "#consumers")
    screenshot(browser, "consumers")
    browser.find_element(By.LINK_TEXT, "projector").click()
    assert _text(browser, "#lag") == "20"
    browser.find_element(By.CSS_SELECTOR, "input[value=head]").click()
    _submit(browser, "reset")
    assert _text(browser, "#lag") == "0"
    assert cps.lag("projector", "reports")[0] == 0 and cps.position("projector", "reports") != START
    assert [a[1:] for a in _actions(jobs_store)] == [
        ("restore", f"archive run {run_id}", "refused"),
        ("login", "console", "done"),
        ("restore", f"archive run {run_id}", "done"),
        ("reset", "consumer projector group reports", "done"),
    ]
