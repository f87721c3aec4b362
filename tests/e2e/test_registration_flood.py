"""A registration flood from one address is limited, scored on the address, and banned."""

from __future__ import annotations

from tests.e2e.conftest import Stack, assert_banned, assert_limited, fresh_email

REGISTER_MAX = 2


async def test_registration_flood_is_limited_scored_and_banned(stack: Stack) -> None:
    flooder = stack.fresh_ip()
    created = [fresh_email("flood") for _ in range(REGISTER_MAX)]
    for email in created:
        response = await stack.register(flooder, email)
        assert response.status_code == 200, response.text
    assert await stack.score(flooder) == 0

    refused = [fresh_email("refused") for _ in range(3)]
    # Over the limit: 429, and each refusal adds REGISTRATION_VIOLATION_SCORE (1) to the address.
    for expected_score, email in enumerate(refused[:2], start=1):
        assert_limited(await stack.register(flooder, email), REGISTER_MAX)
        assert await stack.score(flooder) == expected_score
        assert (await stack.check(ip=flooder))["banned"] is False
    # The third violation reaches BAN_INTERVAL (3): this request is already refused with the ban.
    body = assert_banned(await stack.register(flooder, refused[2]))
    check = await stack.check(ip=flooder)
    assert check["banned"] is True and check["subject"] == f"ip:{flooder}"
    assert check["reason"] == body["reason"]
    (record,) = [r for r in await stack.audit(f"ip:{flooder}") if r["action"] == "ban"]
    assert record["automatic"] is True and record["violation"] == "register"

    # Limited and banned registrations cost nothing: no user was created for them.
    users = stack.collection("users")
    assert await users.count_documents({"email": {"$in": created}}) == REGISTER_MAX
    assert await users.count_documents({"email": {"$in": refused}}) == 0
    # The banned address is shut out of the rest of the service too; others still register.
    assert_banned(await stack.client(flooder).get("/api/config"))
    other = await stack.register(stack.fresh_ip(), fresh_email("other"))
    assert other.status_code == 200, other.text
