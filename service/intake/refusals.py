"""The answers to requests gunicorn refuses before the app sees them, in the service's JSON error shape.

``service.intake.connections.BufferingThreadWorker.handle_error`` uses these instead of gunicorn's HTML page,
so that a bad request line (400), a request line over ``limit_request_line`` (414), too many or too large
headers (431) or an unsupported transfer coding (501) gets ``{code, status, message, errors}`` like every
other error. The message is fixed per kind of error and never repeats what the client sent.
"""

from __future__ import annotations

import json

from gunicorn.http import errors as http_errors  # type: ignore[import-untyped]

from service.intake.errors import HttpError, error_body

_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 414: "URI Too Long"}
_REASONS.update({417: "Expectation Failed", 431: "Request Header Fields Too Large"})
_REASONS.update({500: "Internal Server Error", 501: "Not Implemented"})


def _refusal(name: str, status: int, code: str, message: str) -> tuple[type[BaseException], int, str, str] | None:
    error = getattr(http_errors, name, None)
    return None if error is None else (error, status, code, message)


# gunicorn's parse errors, most specific first: (error class, status, code, message).
_PARSE_ERRORS = [
    found
    for found in (
        _refusal("LimitRequestLine", 414, "uri_too_long", "the request line is too long"),
        _refusal("LimitRequestHeaders", 431, "request_header_fields_too_large", "too many or too large headers"),
        _refusal("UnsupportedTransferCoding", 501, "not_implemented", "this transfer coding is not supported"),
        _refusal("ExpectationFailed", 417, "expectation_failed", "this expectation cannot be met"),
        _refusal("InvalidRequestLine", 400, "invalid_request_line", "the request line is not valid HTTP/1.1"),
        _refusal("InvalidRequestMethod", 400, "invalid_method", "the request method is not valid"),
        _refusal("InvalidHTTPVersion", 400, "invalid_http_version", "the HTTP version is not supported"),
        _refusal("ObsoleteFolding", 400, "invalid_header", "a header is folded over several lines"),
        _refusal("InvalidHeaderName", 400, "invalid_header", "a header name is not valid"),
        _refusal("InvalidHeader", 400, "invalid_header", "a header is not valid"),
        _refusal("InvalidChunkSize", 400, "invalid_chunked_body", "the chunked body is not valid"),
        _refusal("ChunkMissingTerminator", 400, "invalid_chunked_body", "the chunked body is not valid"),
        _refusal("InvalidChunkExtension", 400, "invalid_chunked_body", "the chunked body is not valid"),
        _refusal("InvalidProxyLine", 400, "invalid_proxy_line", "the PROXY protocol line is not valid"),
        _refusal("ForbiddenProxyRequest", 403, "forbidden", "PROXY protocol lines are not accepted from here"),
        _refusal("InvalidSchemeHeaders", 400, "invalid_header", "the scheme headers contradict each other"),
        _refusal("InvalidH2CPreface", 400, "bad_request", "the HTTP/2 preface is not valid"),
    )
    if found is not None
]
_APP_ERRORS = tuple(
    error for error in (getattr(http_errors, "InvalidResponseHeader", None),) if error is not None
) + tuple(error for error in (getattr(http_errors, "InvalidResponseHeaderName", None),) if error is not None)


def describe_refusal(error: BaseException) -> tuple[int, str, str]:
    """(status, code, message) of the answer to a request gunicorn refused with ``error``."""
    if isinstance(error, HttpError):
        return error.status, error.reason, error.message
    if not isinstance(error, _APP_ERRORS):
        for kind, status, code, message in _PARSE_ERRORS:
            if isinstance(error, kind):
                return status, code, message
    return 500, "internal_error", "the service failed; the delivery was not recorded, send it again"


def json_error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer that closes the connection, in the service's JSON error shape."""
    body = json.dumps(error_body(code, status, message)).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body
