"""What the service keeps is private (issue 15): every file it writes under its data directory is
readable by its own user alone (0600, folders 0700), and no API answer shows a path on the
server. Through a real server: an upload, a study that trains and keeps its models, and every
answer a client reads about them."""

from pathlib import Path

import pytest

from tests.conftest import Server, digits_study, finished, wait_for
from tests.service.api._datasets import iris, npz

pytestmark = pytest.mark.slow


def test_data_files_are_private_and_answers_show_no_server_path(shared_server: Server) -> None:
    server, api = shared_server, shared_server.api
    x, y = iris()
    dataset = api.post(
        "/datasets",
        files={"file": ("iris.npz", npz(x=x, y=y))},
        data={"name": "private-iris", "task": "multiclass"},
    )
    assert dataset.status_code == 201, dataset.text
    spec = digits_study("private", max_trials=2, epochs=6, lr=0.01)
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    wait_for(api, study_id, finished)

    answers = [
        api.get(f"/studies/{study_id}"),
        api.get(f"/studies/{study_id}/trials"),
        api.get(f"/studies/{study_id}/trials/0"),
        api.get(f"/studies/{study_id}/best"),
        api.get("/datasets"),
        api.get(f"/datasets/{dataset.json()['id']}"),
    ]
    root = str(server.data_dir.resolve())
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert root not in answer.text, answer.request.url
        assert str(server.data_dir) not in answer.text, answer.request.url
    best = answers[3].json()
    assert "artifact_uri" not in best["user_attrs"]
    weights = api.get(f"/studies/{study_id}/trials/{best['number']}/artifacts/weights")
    assert weights.status_code == 200  # the model is still served, by its route

    # Everything the server wrote (its database, the admin key, the upload, models,
    # checkpoints), but the test harness's own log files next to them.
    written = [p for p in server.data_dir.rglob("*") if not _harness_log(p, server.data_dir)]
    kinds = {p.relative_to(server.data_dir).parts[0] for p in written}
    assert {"tuneforge.db", "admin.key", "datasets", "artifacts"} <= kinds, kinds
    loose = [f"{p} {oct(p.stat().st_mode & 0o777)}" for p in written if p.stat().st_mode & 0o077]
    assert not loose, loose


def _harness_log(path: Path, root: Path) -> bool:
    return path.parent == root and path.suffix == ".log"
