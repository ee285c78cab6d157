"""The one exception tree of pushgate.

    PushgateError
    ├── RequestError                  the caller's input or request is wrong (API: 4xx)
    │   ├── InvalidRequest            400 invalid_request: names what is wrong
    │   ├── Unauthorized              401 unauthorized
    │   ├── Forbidden                 403 forbidden
    │   ├── NotFound                  404 not_found
    │   ├── Conflict                  409 optimistic_locking_error
    │   ├── RequestTooLarge           413 request_too_large: the body passed the size limit
    │   └── RateLimited               429 rate_limited: too many failed sign-ins, wait
    ├── DeliverySkipped               the adapter decided not to send this event (neither
    │                                 success nor failure: no attempt is made or counted)
    └── DeliveryError                 one attempt of a delivery did not succeed
        ├── RetryableDeliveryError    worth another attempt (408, 429, 5xx, busy vendor)
        │   └── TransportError        no HTTP answer at all (refused, DNS, TLS, timeout)
        └── PermanentDeliveryError    retrying cannot help (other 4xx, bad credentials)
            └── BlockedTarget         the target address is refused by the outbound policy

Retryable versus permanent is decided by the type, never by a string. The API maps each
`RequestError` to LaunchDarkly's `{"code", "message"}` body; anything else is a 500 that
leaks nothing.
"""

from __future__ import annotations


class PushgateError(Exception):
    """Base of every error pushgate raises on purpose."""


class RequestError(PushgateError):
    """The request cannot be served as asked; `code` and `status` shape the API answer."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(RequestError):
    """The body, a parameter or a field is invalid; the message names it."""


class Unauthorized(RequestError):
    """No credential, or one that is not known."""

    code = "unauthorized"
    status = 401


class Forbidden(RequestError):
    """The credential is known but its role does not allow this."""

    code = "forbidden"
    status = 403


class NotFound(RequestError):
    """The integration, configuration or other resource does not exist."""

    code = "not_found"
    status = 404


class Conflict(RequestError):
    """The resource changed underneath the request (a failed JSON Patch `test`, a lost race)."""

    code = "optimistic_locking_error"
    status = 409


class RequestTooLarge(RequestError):
    """The request body is larger than `PUSHGATE_REQUEST_SIZE_LIMIT`."""

    code = "request_too_large"
    status = 413


class RateLimited(RequestError):
    """Too many failed sign-ins from this client address; `retry_after` seconds to wait."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliverySkipped(PushgateError):
    """Raised by `Integration.build_request`: this event is not for this configuration.

    A manifest integration whose template renders nothing for an event (the framework's way
    of saying "do not send") raises it, as does one with no template for the event's kind.
    Not a `DeliveryError`: nothing failed, and the delivery is finished without an attempt.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeliveryError(PushgateError):
    """One attempt failed. Carries what the error log shows and an operator hint."""

    def __init__(
        self,
        description: str,
        *,
        status_code: int | None = None,
        response_body: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status_code = status_code
        self.response_body = response_body
        self.hint = hint
        self.retry_after = retry_after


class RetryableDeliveryError(DeliveryError):
    """The receiver may accept the same request later."""


class TransportError(RetryableDeliveryError):
    """No HTTP response: connection refused, DNS failure, TLS failure or timeout."""


class PermanentDeliveryError(DeliveryError):
    """The same request will be refused again; retrying only adds noise."""


class BlockedTarget(PermanentDeliveryError):
    """The target resolves to an address the outbound policy does not allow."""
