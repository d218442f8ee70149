"""The API's objects as ``TypedDict``s (what the methods return; plain dicts at run time).
Fields follow the OpenAPI schema at ``/api/schema/``; new fields may appear."""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


class Pagination(TypedDict):
    next_cursor: str | None
    has_more: bool


class Page(TypedDict, Generic[T]):
    data: list[T]
    pagination: Pagination


class Phone(TypedDict):
    number: str
    type: str
    country: str


class Result(TypedDict):
    status: str  # VERIFIED, NOT_FOUND, NO_CREDITS, FAILED
    email: str | None
    email_status: str | None
    personal_email: str | None
    phones: list[Phone]
    job_title: str | None
    company_domain: str | None
    confidence: int | None
    providers: dict[str, str]


class Attempt(TypedDict):
    provider: str
    kind: str
    outcome: str
    duration_ms: int
    error: str | None


class Contact(TypedDict):
    enrichment_id: str
    status: str  # pending, finished
    first_name: str
    last_name: str
    company_name: str | None
    domain: str | None
    linkedin_url: str | None
    enrichment_type: list[str]
    result: Result | None
    credits_charged: int
    sandbox: bool
    bulk_id: str | None
    custom: Any
    attempts: list[Attempt]
    created_at: str
    finished_at: str | None


class Accepted(TypedDict):
    enrichment_id: str
    status: str  # pending
    first_name: str
    last_name: str
    custom: Any
    created_at: str


class BulkAcceptedContact(TypedDict):
    enrichment_id: str
    custom: Any


class BulkAccepted(TypedDict):
    bulk_id: str
    status: str  # pending
    total: int
    contacts: list[BulkAcceptedContact]


class Counters(TypedDict):
    """A batch's enrichment counters: a bulk's, an import's."""

    finished: int
    verified: int
    not_found: int
    no_credits: int
    failed: int
    credits_used: int


class Bulk(Counters):
    bulk_id: str
    status: str  # pending, completed
    total: int
    created_at: str
    completed_at: str | None


class Credits(TypedDict):
    credits: int
    plan: str
    daily_requests_used: int
    daily_limit: int | None


class CallbackSecret(TypedDict):
    webhook_secret: str
    previous_secret_expires_at: str


class Event(TypedDict):
    id: str
    type: str
    created_at: str
    sandbox: bool
    data: Any


class Endpoint(TypedDict):
    id: str
    url: str
    events: list[str]
    description: str
    rate_limit: int | None
    filter: dict[str, list[Any]] | None
    sandbox: bool
    active: bool
    disabled_at: str | None
    disabled_reason: str | None
    consecutive_failures: int
    last_success_at: str | None
    last_failure_at: str | None
    created_at: str


class EndpointWithSecret(Endpoint):
    secret: str


class DeliveryAttempt(TypedDict):
    at: str
    status_code: int | None
    duration_ms: int | None
    error: str | None
    response_body: str | None


class Delivery(TypedDict):
    id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    created_at: str
    attempts: list[DeliveryAttempt]


class EndpointEnabled(Endpoint):
    replayed: int


class Recover(TypedDict):
    recovered: int


class ContactList(TypedDict):
    """A list (``List`` in the schema; named so beside the built-in ``list``)."""

    id: str
    name: str
    description: str | None
    color: str
    is_pinned: bool
    contact_count: int
    sandbox: bool
    created_at: str
    updated_at: str


class ListEntry(TypedDict):
    list_id: str
    enrichment_id: str
    added_at: str


class Import(Counters):
    """A CSV import: ``processing`` (stage ``validating`` → ``enqueueing`` → ``enriching``),
    then ``completed`` or ``failed``; the counters are its bulk's."""

    import_id: str
    object: str
    status: str
    stage: str
    name: str | None
    file_name: str
    total_rows: int
    valid_rows: int
    imported_rows: int
    error_count: int
    bulk_id: str | None
    list_id: str | None
    enrichment_type: list[str]
    columns: list[str]
    mapping: dict[str, str]
    error_message: str | None
    sandbox: bool
    created_at: str
    updated_at: str
    completed_at: str | None


class RowError(TypedDict):
    """A row an import skipped: its record number in the file (the header is 1)."""

    row: int
    field: str | None
    column: str | None
    message: str


class Export(TypedDict):
    export_id: str
    object: str
    status: str  # processing, completed, failed, expired
    source: str  # import, bulk, list, filters
    source_id: str | None
    filters: dict[str, str] | None
    row_count: int
    download_ready: bool
    download_url: str | None
    error_message: str | None
    sandbox: bool
    created_at: str
    updated_at: str
    completed_at: str | None
    expires_at: str | None
