"""``GET /studies/{id}/best`` says plainly why there is no best trial (issue 16): not yet, or
never (the study ended with no completed trial)."""

from fastapi.testclient import TestClient

from search.spec import StudyStatus
from service.api.examples import STUDY
from service.store import crud


def test_best_of_a_study_without_a_completed_trial_says_why(client: TestClient) -> None:
    study_id = client.post("/api/v1/studies", json=STUDY).json()["id"]
    pending = client.get(f"/api/v1/studies/{study_id}/best")
    assert pending.status_code == 404
    assert pending.json()["detail"] == f"study {study_id} has no completed trial yet"
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        reason = "every trial failed (3); the last: MemoryError"
        crud.mark_finished(session, study_id, StudyStatus.FAILED, reason)
    ended = client.get(f"/api/v1/studies/{study_id}/best")
    assert ended.status_code == 404
    assert ended.json()["detail"] == (
        f"study {study_id} ended (failed) with no completed trial: none has a value"
    )
