from __future__ import annotations

import httpx
import pytest

from conftest import BASE_URL, ensure_minute_room
from connectors_gateway import (
    AuthenticationError,
    Connectors,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitError,
)


def test_401_403_400_are_typed_errors_with_code_and_request_id(new_tenant) -> None:
    created, client = new_tenant("py-errors")
    with Connectors(base_url=BASE_URL, tenant_id=created["id"], api_key="not-a-key") as wrong:
        with pytest.raises(AuthenticationError) as unauthorized:
            wrong.tenant.get()
    assert unauthorized.value.status == 401
    assert unauthorized.value.code == "unauthorized"
    assert unauthorized.value.request_id

    other, _ = new_tenant("py-errors-other")
    with Connectors(base_url=BASE_URL, tenant_id=other["id"], api_key=created["apiKey"]) as mismatch:
        with pytest.raises(PermissionDeniedError) as forbidden:
            mismatch.tenant.get()
    assert forbidden.value.status == 403 and forbidden.value.code == "tenant_mismatch"

    with pytest.raises(InvalidRequestError) as invalid:
        client.tools.select("x", max_tools=0)
    assert invalid.value.status == 400 and invalid.value.code == "invalid_request"
    assert "maxTools" in str(invalid.value)

    # Without a tenant id the gateway serves the key's own tenant.
    with Connectors(base_url=BASE_URL, api_key=created["apiKey"]) as own:
        assert own.tenant.get()["id"] == created["id"]


def test_429_is_a_rate_limit_error_with_retry_after_and_a_retry_waits_for_it(new_tenant) -> None:
    # The requests after the first must fall in the same UTC minute as it.
    ensure_minute_room(10)
    created, _ = new_tenant("py-limited", limits={"requestsPerMinute": 1})
    statuses: list[int] = []
    recording = httpx.Client(event_hooks={"response": [lambda response: statuses.append(response.status_code)]})
    tenant = {"base_url": BASE_URL, "tenant_id": created["id"], "api_key": created["apiKey"]}
    with (
        Connectors(**tenant, max_retries=0) as no_retry,
        Connectors(**tenant, max_retries=3, max_retry_delay=1.0, http_client=recording) as impatient,
        Connectors(**tenant, max_retries=3, http_client=recording) as retrying,
    ):
        no_retry.tenant.get()
        with pytest.raises(RateLimitError) as limited:
            no_retry.tenant.get()
        error = limited.value
        assert error.status == 429 and error.code == "rate_limited" and error.request_id
        assert error.retry_after is not None and 1 <= error.retry_after <= 60, error.retry_after
        assert error.body["retryAfter"] == error.retry_after

        # A wait longer than max_retry_delay is not taken: the error comes back at once.
        with pytest.raises(RateLimitError):
            impatient.tenant.get()
        assert statuses == [429]

        # The retrying client waits out the window and gets through.
        statuses.clear()
        assert retrying.tenant.get()["id"] == created["id"]
        assert statuses[0] == 429 and statuses[-1] == 200
    recording.close()
