"""Thin API views for imports and exports: validate, call one service, shape the answer."""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import (
    LIST_PARAMETERS,
    ErrorSerializer,
    error_responses,
    json_object,
    list_params,
)
from apps.core.errors import Conflict, InvalidRequest, SluiceError
from apps.core.pagination import paginate, paginate_ordered

from . import selectors, serializers, services
from .models import Export
from .services.imports import TooLarge
from .validation import export_source, form_value, import_options

# Room for the form's other fields and the multipart framing around the file.
ENVELOPE_BYTES = 64 * 1024
# A text part of one of these types, or none, is taken as CSV; any other is refused.
CSV_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "text/tab-separated-values",
        "text/x-csv",
        "application/csv",
        "application/x-csv",
        "application/vnd.ms-excel",  # what Windows browsers send for .csv
        "application/octet-stream",
        "",
    }
)


class UnsupportedMediaType(SluiceError):
    status_code = 415
    code = "unsupported_media_type"
    message = "Send the file as multipart/form-data, or as JSON with file_data in base64"


class ExportNotReady(Conflict):
    code = "export_not_ready"
    message = "The export is not ready yet; poll GET /exports/{id} until download_ready"


class ExportGone(SluiceError):
    status_code = 410
    code = "export_expired"
    message = "The export's file has expired; create a new export"


def _with_read_scope_for_get(view: APIView, request: Request) -> None:
    # The class's required_scope ("enrich") is the POST's, which the idempotency middleware
    # reads from the class; listing needs "read" only.
    if request.method == "GET":
        view.required_scope = "read"


class ImportListCreateView(APIView):
    required_scope = "enrich"
    parser_classes = [MultiPartParser, JSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        _with_read_scope_for_get(self, request)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="import_create",
        request={
            "multipart/form-data": serializers.ImportUploadSerializer,
            "application/json": serializers.ImportJsonSerializer,
        },
        responses={
            202: serializers.ImportSerializer,
            **error_responses(400, 401, 402, 403, 409, 413, 422, 429),
            415: OpenApiResponse(ErrorSerializer, description="Neither multipart nor JSON"),
        },
        summary="Import a CSV file of contacts (asynchronous)",
    )
    def post(self, request: Request) -> Response:
        account, api_key = request.user, request.auth
        media = (request.content_type or "").split(";")[0].strip().lower()
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if media == "multipart/form-data":
            if length > settings.IMPORT_MAX_BYTES + ENVELOPE_BYTES:
                raise _too_large()
            upload = request.FILES.get("file")
            if upload is None:
                raise InvalidRequest(details={"file": "This field is required (a CSV file)."})
            kind = (upload.content_type or "").split(";")[0].strip().lower()
            if kind not in CSV_TYPES and not kind.startswith("text/"):
                raise InvalidRequest(
                    details={"file": f"Must be a CSV file (text/csv), not {kind}."}
                )
            data = {key: _form_field(request.data, key) for key in request.data if key != "file"}
            options = import_options(
                data, consent=account.personal_email_consent, known=frozenset()
            )
            job = services.import_create(
                account=account,
                api_key=api_key,
                upload=upload,
                file_name=upload.name or "upload.csv",
                options=options,
            )
        elif media in ("application/json", ""):
            if length > settings.IMPORT_MAX_BYTES * 4 // 3 + ENVELOPE_BYTES:
                raise _too_large()
            body = _json_body(request)
            options = import_options(
                {k: v for k, v in body.items() if k not in ("file_name", "file_data")},
                consent=account.personal_email_consent,
                known=frozenset(),
            )
            file_name, upload = _decoded_file(body)
            with upload:
                job = services.import_create(
                    account=account,
                    api_key=api_key,
                    upload=upload,
                    file_name=file_name,
                    options=options,
                )
        else:
            raise UnsupportedMediaType()
        return Response(
            selectors.import_data(job),
            status=202,
            headers={"Location": f"/api/v1/imports/{job.pk}"},
        )

    @extend_schema(
        operation_id="import_list",
        parameters=LIST_PARAMETERS,
        responses={200: serializers.ImportListSerializer, **error_responses(401, 403, 422, 429)},
        summary="List imports, newest first",
    )
    def get(self, request: Request) -> Response:
        cursor, limit = list_params(request)
        queryset = selectors.import_list(account=request.user, sandbox=request.auth.sandbox)
        return Response(
            paginate(queryset, cursor=cursor, limit=limit, serialize=selectors.imports_data)
        )


_LISTED = frozenset({"enrichment_type", "phone_country_codes"})


def _form_field(form: Any, key: str) -> Any:
    """A form field as the JSON form's value; a list field may also be repeated
    (``-F enrichment_type=email -F enrichment_type=phone``)."""
    values = form.getlist(key)
    if key in _LISTED and len(values) > 1:
        return [v.strip() for v in values]
    return form_value(values[-1], listed=key in _LISTED)


def _too_large() -> TooLarge:
    return TooLarge(
        f"The file is larger than {settings.IMPORT_MAX_BYTES} bytes (IMPORT_MAX_BYTES)."
    )


def _json_body(request: Request) -> dict[str, Any]:
    """The JSON form's body. Read from the stream (not ``request.body``, which stops at
    DATA_UPLOAD_MAX_MEMORY_SIZE): the Content-Length was checked against the import's own
    limit above."""
    raw = request.read()  # Django's HttpRequest.read(), through REST framework's Request
    if not raw:
        return json_object(request)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        from rest_framework.exceptions import ParseError

        raise ParseError(f"JSON parse error - {exc}") from None
    if type(data) is not dict:
        from apps.core.api import BadRequest

        raise BadRequest()
    return data


def _decoded_file(body: dict[str, Any]) -> tuple[str, Any]:
    problems: dict[str, str] = {}
    file_name, file_data = body.get("file_name"), body.get("file_data")
    if not isinstance(file_name, str) or not file_name.strip() or len(file_name) > 255:
        problems["file_name"] = "Must be a file name of 1 to 255 characters."
    if not isinstance(file_data, str) or not file_data:
        problems["file_data"] = "This field is required (the CSV file, base64)."
    if problems:
        raise InvalidRequest(details=problems)
    upload = tempfile.SpooledTemporaryFile(max_size=2 * 1024 * 1024)  # noqa: SIM115 - caller closes
    try:
        step = 4 * 256 * 1024
        text = (
            "".join(file_data.split()) if any(c.isspace() for c in file_data[:1024]) else file_data
        )
        for start in range(0, len(text), step):
            upload.write(base64.b64decode(text[start : start + step], validate=True))
    except (binascii.Error, ValueError):
        upload.close()
        raise InvalidRequest(details={"file_data": "Must be base64 (RFC 4648)."})
    if upload.tell() > settings.IMPORT_MAX_BYTES:
        upload.close()
        raise _too_large()
    upload.seek(0)
    return file_name.strip(), upload


class ImportDetailView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="import_retrieve",
        responses={200: serializers.ImportSerializer, **error_responses(401, 403, 404, 429)},
        summary="Progress of an import",
    )
    def get(self, request: Request, import_id: str) -> Response:
        job = selectors.import_get(
            account=request.user, sandbox=request.auth.sandbox, import_id=import_id
        )
        return Response(selectors.import_data(job))


class ImportErrorsView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="import_errors",
        parameters=LIST_PARAMETERS,
        responses={
            200: serializers.RowErrorListSerializer,
            **error_responses(401, 403, 404, 422, 429),
        },
        summary="The rows an import skipped, and why (in file order)",
    )
    def get(self, request: Request, import_id: str) -> Response:
        job = selectors.import_get(
            account=request.user, sandbox=request.auth.sandbox, import_id=import_id
        )
        cursor, limit = list_params(request)
        return Response(
            paginate_ordered(
                selectors.import_errors(job=job),
                order=("row", "pk"),
                cursor=cursor,
                limit=limit,
                serialize=selectors.row_errors_data,
            )
        )


class ExportListCreateView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="export_create",
        request=serializers.ExportRequestSerializer,
        responses={
            202: serializers.ExportSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429),
        },
        summary="Export contacts as CSV: an import's, a bulk's, a list's or a filter's",
    )
    def post(self, request: Request) -> Response:
        source, value = export_source(json_object(request))
        export = services.export_create(
            account=request.user, api_key=request.auth, source=source, value=value
        )
        return Response(
            selectors.export_data(export),
            status=202,
            headers={"Location": f"/api/v1/exports/{export.pk}"},
        )

    @extend_schema(
        operation_id="export_list",
        parameters=LIST_PARAMETERS,
        responses={200: serializers.ExportListSerializer, **error_responses(401, 403, 422, 429)},
        summary="List exports, newest first",
    )
    def get(self, request: Request) -> Response:
        cursor, limit = list_params(request)
        queryset = selectors.export_list(account=request.user, sandbox=request.auth.sandbox)
        return Response(
            paginate(queryset, cursor=cursor, limit=limit, serialize=selectors.exports_data)
        )


class ExportDetailView(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="export_retrieve",
        responses={200: serializers.ExportSerializer, **error_responses(401, 403, 404, 429)},
        summary="State of an export",
    )
    def get(self, request: Request, export_id: str) -> Response:
        return Response(
            selectors.export_data(
                selectors.export_get(
                    account=request.user, sandbox=request.auth.sandbox, export_id=export_id
                )
            )
        )


class CsvRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: text/csv``; the body is the stored file itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        # Only errors reach a renderer here: the file is a FileResponse.
        return json.dumps(data).encode() if data is not None else b""


class ExportDownloadView(APIView):
    required_scope = "read"
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        operation_id="export_download",
        # ?format= (REST framework's URL_FORMAT_OVERRIDE) picks nothing here: it is always CSV.
        parameters=[OpenApiParameter("format", exclude=True)],
        responses={
            (200, "text/csv"): OpenApiResponse(
                str, description="The CSV (UTF-8 with a BOM), streamed"
            ),
            **error_responses(401, 403, 404, 429),
            409: OpenApiResponse(ErrorSerializer, description="Not written yet (or failed)"),
            410: OpenApiResponse(ErrorSerializer, description="Expired: its file was deleted"),
        },
        summary="Download an export's CSV",
    )
    def get(self, request: Request, export_id: str) -> HttpResponse:
        export = selectors.export_get(
            account=request.user, sandbox=request.auth.sandbox, export_id=export_id
        )
        if export.status == Export.EXPIRED:
            raise ExportGone()
        if export.status == Export.FAILED:
            raise Conflict(export.error_message or "The export failed", code="export_failed")
        if not export.download_ready:
            raise ExportNotReady()
        return FileResponse(
            default_storage.open(export.file_key, "rb"),
            as_attachment=True,
            filename=f"sluice-export-{export.pk}.csv",
            content_type="text/csv; charset=utf-8",
        )
