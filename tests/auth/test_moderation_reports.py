"""Report fates: a report moderation refuses is counted as rejected, never as delivered."""

from __future__ import annotations

from pathlib import Path

from harness import eventually
from services.auth.metrics import _AuthCollector
from services.auth.moderation_client import ModerationClient
from tests.auth.test_moderation_client import settings_for
from tests.moderation.conftest import fresh_ip, launch


def report_fates(client: ModerationClient) -> dict[str, float]:
    """`authgate_moderation_reports` as /metrics would show it for this client."""
    collector = _AuthCollector()
    collector.moderation = client
    family = next(f for f in collector.collect() if f.name == "authgate_moderation_reports")
    return {sample.labels["fate"]: sample.value for sample in family.samples}


async def test_rejected_reports_are_not_counted_as_delivered(work_dir: Path) -> None:
    service = launch(work_dir, "memory", None)
    client = ModerationClient(settings_for(service.url))
    try:
        await client.start()
        for _ in range(3):  # moderation answers 422: not an address
            client.report_violation("illegal_model", ip="not-an-address")
        await eventually(lambda: client.stats.buffered == 0, "the buffer to drain")
        assert client.stats.delivered == 0 and client.stats.dropped == 0
        assert client.stats.rejected == 3

        client.report_violation("illegal_model", ip=fresh_ip())  # a good one still counts as delivered
        await eventually(lambda: client.stats.buffered == 0, "the buffer to drain")
        assert report_fates(client) == {"delivered": 1.0, "dropped": 0.0, "rejected": 3.0}
    finally:
        await client.aclose()
        service.server.stop()
