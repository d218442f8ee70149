"""The admin in a real browser: headless Chromium (Debian packages) driven by Selenium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from apps.enrichment.models import Contact, ProviderAttempt
from apps.webhooks.models import Delivery, DeliveryAttempt
from apps.webhooks.services import endpoint_deactivate
from tests.factories import AccountFactory, ContactFactory
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "ops-password-1234"
WAIT_SECONDS = 10


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(
            "needs the Debian packages chromium and chromium-driver "
            "(scripts/test installs them when run as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


def _run_action(driver, row_text: str, action: str) -> str:
    """Tick the row containing ``row_text``, pick ``action``, press Go; returns the message."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    row = driver.find_element(
        By.XPATH, f"//table[@id='result_list']//tr[contains(., '{row_text}')]"
    )
    row.find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(driver.find_element(By.NAME, "action")).select_by_value(action)
    driver.find_element(By.CSS_SELECTOR, "button[name='index']").click()
    return _wait(
        driver, ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li"))
    ).text


def test_ops_finds_an_enrichment_retries_a_delivery_and_reenables_an_endpoint(
    browser, live_server, django_user_model, tmp_path, settings
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    # A slow password hash proves nothing here and costs a second per login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    account = AccountFactory(name="Stripe Inc")
    contact = ContactFactory(
        account=account,
        first_name="Sarah",
        last_name="Chen",
        domain="stripe.com",
        status=Contact.FINISHED,
        result_status=Contact.VERIFIED,
        finished_at=timezone.now(),
        result={"status": "VERIFIED", "email": "sarah.chen@stripe.com", "phones": []},
        custom={"hubspot_id": "4447901"},
    )
    ProviderAttempt.objects.create(
        contact=contact, provider="sandbox", kind="email", outcome="hit", duration_ms=182
    )
    ContactFactory(account=account, first_name="Other", last_name="Person")
    failing = EndpointFactory(account=account, url="https://crm.example/failing-hook")
    delivery = DeliveryFactory(endpoint=failing, status=Delivery.FAILED, attempt_count=3)
    DeliveryAttempt.objects.create(
        delivery=delivery, at=timezone.now(), status_code=500, error="HTTP 500"
    )
    dead = EndpointFactory(account=account, url="https://crm.example/dead-hook")
    endpoint_deactivate(endpoint=dead, reason="HTTP 410 Gone")

    # Log in.
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type='submit']").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "ops-links")))

    # Find the enrichment by the email that was found for it, and open it.
    browser.get(f"{live_server.url}/admin/enrichment/contact/")
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("sarah.chen@stripe.com")
    search.submit()
    _wait(browser, ec.url_contains("q=sarah.chen"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1
    rows[0].find_element(By.LINK_TEXT, "Sarah Chen").click()
    _wait(browser, ec.url_contains(str(contact.pk)))
    page = browser.find_element(By.ID, "content").text
    assert "sarah.chen@stripe.com" in page
    assert "4447901" in page  # custom
    assert "182" in page  # the attempt inline

    # Retry the failed delivery.
    browser.get(f"{live_server.url}/admin/webhooks/delivery/?status__exact=failed")
    message = _run_action(browser, "failing-hook", "retry")
    assert "Queued 1 deliveries again." in message
    delivery.refresh_from_db()
    assert delivery.status == Delivery.PENDING

    # Re-enable the deactivated endpoint.
    browser.get(f"{live_server.url}/admin/webhooks/endpoint/?active__exact=0")
    message = _run_action(browser, "dead-hook", "enable")
    assert "Enabled 1 endpoint(s)." in message
    dead.refresh_from_db()
    assert dead.active and dead.disabled_at is None

    # The dashboard renders its charts.
    browser.get(f"{live_server.url}/admin/dashboard/")
    _wait(browser, ec.presence_of_element_located((By.ID, "chart-outcomes")))
    charts = browser.find_elements(By.CSS_SELECTOR, ".ops-card svg")
    assert len(charts) >= 5
    assert all(c.size["width"] > 100 for c in charts)
    shot = Path(os.environ.get("SLUICE_SCREENSHOT_DIR", tmp_path)) / "dashboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
