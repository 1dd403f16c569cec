"""``GET /studies?status=``: a tenant's studies with one status (the CLI's ``studies --state``)."""

from fastapi.testclient import TestClient

from search.spec import StudyStatus
from service.api.examples import STUDY
from service.store import crud


def test_studies_filter_by_status(client: TestClient) -> None:
    ids = [client.post("/api/v1/studies", json=STUDY).json()["id"] for _ in range(3)]
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        crud.mark_finished(session, ids[1], StudyStatus.COMPLETED, "max_trials reached")
    done = client.get("/api/v1/studies", params={"status": "completed"}).json()
    assert [s["id"] for s in done["items"]] == [ids[1]] and done["total"] == 1
    pending = client.get("/api/v1/studies", params={"status": "pending"}).json()
    assert [s["id"] for s in pending["items"]] == [ids[0], ids[2]]
    bad = client.get("/api/v1/studies", params={"status": "done"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]
