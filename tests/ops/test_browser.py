"""The admin in a real browser: headless Chromium (Debian packages) driven by Selenium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from apps.accounts.services import credits_add
from apps.enrichment.models import Contact, List, ProviderAttempt
from apps.enrichment.services.lists import contacts_add_to_list
from apps.providers.models import ProviderConfig
from apps.webhooks.models import Delivery, DeliveryAttempt
from apps.webhooks.services import endpoint_deactivate
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    BulkJobFactory,
    ContactFactory,
    IdempotencyRecordFactory,
)
from tests.support.browser import layout_problems, save_full_page, set_viewport
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "ops-password-1234"
WAIT_SECONDS = 10
# Two common laptop widths; the admin's navigation sidebar is open, as it is by default.
WIDTHS = (1280, 1400)
# The changelists and change forms ops use most; each must be among the pages checked.
MODELS_SHOWN = (
    "accounts-account",
    "accounts-apikey",
    "accounts-ledgerentry",
    "enrichment-contact",
    "enrichment-bulkjob",
    "enrichment-list",
    "enrichment-listentry",
    "providers-providerconfig",
    "webhooks-endpoint",
    "webhooks-delivery",
    "webhooks-event",
)


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


@pytest.fixture
def ops_user(django_user_model, settings):
    # A slow password hash proves nothing here and costs a second per login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def _log_in(driver, live_server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{live_server.url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("ops")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type='submit']").click()
    _wait(driver, ec.presence_of_element_located((By.ID, "ops-links")))


def _screenshot_dir(tmp_path: Path) -> Path:
    """``$SLUICE_SCREENSHOT_DIR``, else ``$SLUICE_VAR_DIR/screenshots`` (kept after the run),
    else the test's tmp dir."""
    if os.environ.get("SLUICE_SCREENSHOT_DIR"):
        return Path(os.environ["SLUICE_SCREENSHOT_DIR"])
    if os.environ.get("SLUICE_VAR_DIR"):
        return Path(os.environ["SLUICE_VAR_DIR"]) / "screenshots"
    return tmp_path / "screenshots"


def test_ops_finds_an_enrichment_retries_a_delivery_and_reenables_an_endpoint(
    browser, live_server, ops_user, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

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

    _log_in(browser, live_server)

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
    shot = _screenshot_dir(tmp_path) / "dashboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))


# --- Layout: every admin page at common laptop widths ------------------------------------------


@pytest.fixture
def admin_rows(ops_user):
    """A row in every admin table, with values as long as real ones get: a hyphenated name, a
    long company domain and the email found on it, a webhook URL with a path."""
    now = timezone.now()
    account = AccountFactory(name="Northwind Traders International")
    credits_add(account=account, amount=5000, reason="Annual plan top-up", created_by=ops_user)
    key = ApiKeyFactory(account=account, name="HubSpot production sync")
    bulk = BulkJobFactory(account=account, total=3, finished=2, verified=1, failed=1)
    found = ContactFactory(
        account=account,
        api_key=key,
        bulk=bulk,
        first_name="Alexandria",
        last_name="Montgomery-Whitfield",
        company_name="Consolidated Freight & Logistics",
        domain="consolidated-logistics.com",
        status=Contact.FINISHED,
        result_status=Contact.VERIFIED,
        finished_at=now,
        result={
            "status": "VERIFIED",
            "email": "alexandria.montgomery-whitfield@consolidated-logistics.com",
            "phones": ["+14155550123"],
        },
        custom={"hubspot_id": "4447901", "owner": "emea-sales"},
    )
    ProviderAttempt.objects.create(
        contact=found, provider="sandbox", kind="email", outcome="hit", duration_ms=182
    )
    ContactFactory(
        account=account,
        bulk=bulk,
        first_name="Sarah",
        last_name="Chen",
        domain="stripe.com",
        status=Contact.FINISHED,
        result_status=Contact.FAILED,
        finished_at=now,
        result={"status": "FAILED", "phones": []},
    )
    ContactFactory(account=account, bulk=bulk, first_name="Pending", last_name="Person")
    ProviderConfig.objects.create(
        name="sandbox", priority_email=1, read_timeout=4, notes="Deterministic test provider."
    )
    endpoint = EndpointFactory(
        account=account, url="https://crm.northwind-traders.example/webhooks/sluice/enrichment"
    )
    dead = EndpointFactory(account=account, url="https://crm.northwind-traders.example/old-hook")
    endpoint_deactivate(endpoint=dead, reason="HTTP 410 Gone")
    delivery = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED, attempt_count=3)
    DeliveryAttempt.objects.create(
        delivery=delivery, at=now, status_code=500, error="HTTP 500 Internal Server Error"
    )
    IdempotencyRecordFactory(account=account, key="5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11")
    targets = List.objects.create(
        account=account,
        sandbox=True,
        name="Q2 SaaS targets - EMEA enterprise accounts",
        description="Outreach for the June 23 launch, owned by the EMEA sales team",
        color="indigo",
        is_pinned=True,
    )
    contacts_add_to_list(list_obj=targets, contacts=[found])


def _admin_pages() -> list[tuple[str, str]]:
    """(name, path) of the index, the dashboard, and every model's changelist and the change
    forms of its rows (three at most)."""
    pages = [("index", reverse("admin:index")), ("dashboard", reverse("ops:dashboard"))]
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label_lower):
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        name = model._meta.label_lower.replace(".", "-")
        pages.append((f"{name}-changelist", reverse(f"{prefix}_changelist")))
        for i, pk in enumerate(
            model._default_manager.order_by("pk").values_list("pk", flat=True)[:3]
        ):
            pages.append((f"{name}-change-{i + 1}", reverse(f"{prefix}_change", args=[pk])))
    return pages


@pytest.mark.parametrize("width", WIDTHS)
def test_the_dashboard_link_reads_on_one_line(browser, live_server, ops_user, width):
    """Django's dashboard.css once squeezed it into a column one letter wide."""
    from selenium.webdriver.common.by import By

    set_viewport(browser, width)
    _log_in(browser, live_server)
    link = browser.find_element(By.CSS_SELECTOR, "#ops-links a")
    line = browser.execute_script(
        "return parseFloat(getComputedStyle(arguments[0]).lineHeight)", link
    )
    size = link.size
    assert size["width"] > size["height"], size
    assert size["height"] < 1.5 * line, (size, line)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_admin_page_fits_the_window(browser, live_server, admin_rows, tmp_path, width):
    """The index, the dashboard, every changelist and change forms of every model, with the
    navigation sidebar open (Django's default): none scrolls sideways, sticks out of the
    window or squeezes text until its words break; at 1400 px no changelist hides a column
    behind its results box's scroll bar. At 1280 px the sidebars leave a changelist with
    filters under 700 px, and a wide one may scroll inside its results box (Django's own
    fallback), never the page. Each page is saved as a PNG to look at."""
    set_viewport(browser, width)
    _log_in(browser, live_server)
    shots = _screenshot_dir(tmp_path) / str(width)
    pages = _admin_pages()
    problems = []
    for name, path in pages:
        browser.get(live_server.url + path)
        assert "Server Error" not in browser.title, path
        assert save_full_page(browser, shots / f"{name}.png").stat().st_size > 0
        found = layout_problems(browser, results_may_scroll=width < 1400)
        problems += [f"{name}: {problem}" for problem in found]
    names = {name for name, _ in pages}
    for model in MODELS_SHOWN:
        assert {f"{model}-changelist", f"{model}-change-1"} <= names, model
    report = "\n".join(problems)
    assert not problems, f"{len(problems)} layout faults (screenshots in {shots}):\n{report}"
