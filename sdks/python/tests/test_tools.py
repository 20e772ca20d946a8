from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conftest import MCP_URL, eventually, text_of, unique
from connectors_gateway import AdminAPI, InvalidRequestError, NotFoundError


def test_integration_tools_select_list_get_invoke_feedback_usage_audit_metrics(admin: AdminAPI, new_tenant) -> None:
    name = unique("pyexample")
    category = unique("py-tools")
    integration = admin.integrations.create(name, MCP_URL, category=category, description="SDK suite")
    assert integration["status"] == "ready"
    assert integration["toolsDiscovered"] == 6
    assert name in [i["name"] for i in admin.integrations.list()]

    created, client = new_tenant("py-tools")
    selection = client.tools.select("add two numbers", allowed_categories=[category])
    assert selection["tools"]["tier1"][0]["id"] == f"{name}.add"
    assert selection["performance"]["tokenUsage"] <= selection["performance"]["tokenBudget"]
    tight = client.tools.select("numbers", token_budget=60, max_tools=6, allowed_categories=[category])
    assert tight["performance"]["tokenUsage"] <= 60

    page = client.tools.list(category=category, limit=4)
    assert page["total"] == 6 and len(page["tools"]) == 4 and page["nextCursor"]
    ids = [tool["id"] for tool in client.tools.iterate(category=category, limit=4)]
    assert len(ids) == 6 and f"{name}.echo" in ids

    add = client.tools.get(f"{name}.add")
    assert sorted(add["inputSchema"]["properties"]) == ["a", "b"]
    with pytest.raises(NotFoundError):
        client.tools.get(f"{name}.nothing")

    total = client.tools.invoke(f"{name}.add", {"a": 2, "b": 3}, selection_id=selection["selectionId"])
    assert total["toolId"] == f"{name}.add"
    assert text_of(total["result"]) == "5"
    assert total["result"]["isError"] is False
    failed = client.tools.invoke(f"{name}.fail", {"message": "boom"})
    assert failed["result"]["isError"] is True, "a tool's own failure is a result, not an exception"
    with pytest.raises(NotFoundError) as unknown:
        client.tools.invoke(f"{name}.nothing")
    assert unknown.value.status == 404 and unknown.value.code == "not_found"

    client.tools.feedback([f"{name}.add"], query="sum these")
    client.tools.feedback([f"{name}.add"], selection_id=selection["selectionId"])
    with pytest.raises(InvalidRequestError) as invalid:
        client.tools.feedback([f"{name}.add"])
    assert invalid.value.status == 400 and invalid.value.code == "invalid_request" and invalid.value.request_id

    def two_invocations() -> dict:
        report = admin.usage.get(created["id"])
        assert report["toolInvocations"] == 2, report
        return report

    usage = eventually("two invocations in the usage report", two_invocations)
    assert usage["tenantId"] == created["id"]
    assert client.tenant.get()["usage"]["toolInvocations"] == 2

    def invocations_audited() -> list:
        events = list(admin.audit.iterate(created["id"], action="tools.invoke", limit=2))
        assert len(events) >= 3, events
        return events

    events = eventually("the invocations in the audit log", invocations_audited)
    audited = next(event for event in events if event.get("toolId") == f"{name}.add")
    assert audited["result"] == "success" and audited["tenantId"] == created["id"]

    today = datetime.now(timezone.utc).date().isoformat()

    def counted() -> dict:
        metrics = admin.metrics.get(created["id"], start_date=today, end_date=today)
        assert metrics["tools"]["invocations"] == 2, metrics
        return metrics

    metrics = eventually("the invocations in the metrics", counted)
    assert metrics["tools"]["selections"] >= 2
    assert metrics["requests"]["total"] >= 8

    assert admin.integrations.refresh(name)["toolsDiscovered"] == 6
    admin.integrations.delete(name)
    with pytest.raises(NotFoundError):
        admin.integrations.delete(name)
    with pytest.raises(NotFoundError):
        client.tools.get(f"{name}.add")
