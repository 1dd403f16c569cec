"""A small typed client of the tuneforge REST API; the ``tuneforge`` CLI is built on it.

    from service.client.api import Client

    with Client("http://127.0.0.1:8000", api_key="tf_...") as tf:
        study = tf.submit(yaml.safe_load(open("examples/digits-mlp.yaml")))
        for event in tf.events(study["id"]):  # live, until the study ends
            print(event.kind, event.data)
        print(tf.best(study["id"]))

It imports neither the server nor PyTorch, so scripts and the CLI start fast. Responses are
the API's JSON, typed with :class:`typing.TypedDict` views of the fields a client reads
(every field the API sends is there; the OpenAPI page at ``/docs`` lists them all). An
external study's trials are evaluated here: ``tf.study(7).optimize(objective)``
(:mod:`service.client.external`; ``ask``, ``report_trial``, ``tell``, ``renew`` its requests).
"""

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NotRequired, Self, TypedDict

import httpx

from service.client.errors import ApiError as ApiError
from service.client.errors import Unreachable as Unreachable
from service.client.errors import error_from as _error
from service.client.events import Event, parse_events
from service.client.external import Asked, RemoteStudy, Renewed, Reported, TellState

TrialState = Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"]
ArtifactKind = Literal["torchscript", "weights", "spec"]
FINISHED = frozenset({"completed", "failed", "stopped"})


class Study(TypedDict):
    id: int
    name: str
    status: str
    status_reason: str | None
    optuna_study_name: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    trial_counts: dict[str, int]
    best_value: float | None
    spec: dict[str, Any]


class StudyPage(TypedDict):
    items: list[Study]
    total: int
    offset: int
    limit: int


class Trial(TypedDict):
    number: int
    state: TrialState
    params: dict[str, Any]
    value: float | None
    values: list[float] | None
    intermediate_values: dict[str, float]
    fail_reason: str | None
    node_id: str | None
    user_attrs: dict[str, Any]
    datetime_start: str | None
    datetime_complete: str | None
    duration_s: float | None
    learning_curve: NotRequired[list[dict[str, Any]]]
    final_metrics: NotRequired[dict[str, float]]
    artifacts: NotRequired[list[str]]


class TrialPage(TypedDict):
    items: list[Trial]
    total: int
    offset: int
    limit: int


class ParetoFront(TypedDict):
    objectives: list[dict[str, str]]
    trials: list[Trial]


class Key(TypedDict):
    id: int
    tenant: str
    name: str
    prefix: str
    admin: bool
    created_at: str
    revoked_at: str | None
    key: NotRequired[str]


class Client:
    """The API at ``url`` (``http://host:port``), acting with ``api_key``.

    Args:
        url: the server's base URL, without ``/api/v1``.
        api_key: sent as ``Authorization: Bearer``; None sends no key (auth switched off).
        timeout: seconds for each request (a stream of events has no read timeout).
        transport: the httpx transport to send requests with (tests: ``httpx.MockTransport``);
            None: httpx's own.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1", timeout=timeout, headers=headers, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- studies --------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any]) -> Study:
        """Submit a study (the spec as a YAML file holds it); it starts at once."""
        result: Study = self._json("POST", "/studies", json=spec)
        return result

    def studies(self, offset: int = 0, limit: int = 50, status: str | None = None) -> StudyPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status
        result: StudyPage = self._json("GET", "/studies", params=params)
        return result

    def study(self, study_id: int) -> RemoteStudy:
        """The study's JSON (a dict), whose ``optimize()`` evaluates its trials here when its
        task is external (:class:`service.client.external.RemoteStudy`)."""
        return RemoteStudy(self, study_id, self._json("GET", f"/studies/{study_id}"))

    def patch(self, study_id: int, changes: dict[str, Any]) -> Study:
        """Change a study's budget or parallelism; a finished study resumes."""
        result: Study = self._json("PATCH", f"/studies/{study_id}", json=changes)
        return result

    def stop(self, study_id: int, drain: bool = False) -> Study:
        """Stop a study: cancel its trials in flight, or with ``drain`` let them finish."""
        result: Study = self._json(
            "POST", f"/studies/{study_id}/stop", params={"drain": str(drain).lower()}
        )
        return result

    def delete(self, study_id: int) -> None:
        self._json("DELETE", f"/studies/{study_id}")

    # -- trials ---------------------------------------------------------------------------

    def trials(
        self,
        study_id: int,
        state: TrialState | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> TrialPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if state:
            params["state"] = state
        result: TrialPage = self._json("GET", f"/studies/{study_id}/trials", params=params)
        return result

    def enqueue(
        self, study_id: int, params: dict[str, Any], note: str | None = None
    ) -> dict[str, Any]:
        """Queue a trial with these parameters (the rest sampled): it runs next."""
        body: dict[str, Any] = {"params": params} | ({"note": note} if note else {})
        result: dict[str, Any] = self._json("POST", f"/studies/{study_id}/trials", json=body)
        return result

    def trial(self, study_id: int, number: int) -> Trial:
        """A trial with its learning curve, final metrics and artifacts."""
        result: Trial = self._json("GET", f"/studies/{study_id}/trials/{number}")
        return result

    def best(self, study_id: int) -> Trial | ParetoFront:
        """The best trial, or for several objectives the Pareto front."""
        result: Trial | ParetoFront = self._json("GET", f"/studies/{study_id}/best")
        return result

    def best_trials(self, study_id: int) -> list[Trial]:
        """The best trial as a list of one, or for several objectives the Pareto front."""
        best = self._json("GET", f"/studies/{study_id}/best")
        trials: list[Trial] = best.get("trials", [best])
        return trials

    def artifact(
        self,
        study_id: int,
        kind: ArtifactKind,
        number: int | None = None,
    ) -> bytes:
        """A trained model's file: of trial ``number``, or of the best trial."""
        where = "best" if number is None else f"trials/{number}"
        return self._request("GET", f"/studies/{study_id}/{where}/artifacts/{kind}").content

    def report(self, study_id: int) -> str:
        """The study's self-contained HTML report."""
        return self._request("GET", f"/studies/{study_id}/report").text

    def events(self, study_id: int) -> Iterator[Event]:
        """The study's events as they happen: first its state so far (the study, then every
        trial), then each change, until ``end`` (the study finished)."""
        try:
            with self._http.stream(
                "GET",
                f"/studies/{study_id}/events",
                timeout=httpx.Timeout(self._http.timeout.connect, read=None),
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                yield from parse_events(resp.iter_lines())
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach tuneforge at {self.url}: {exc}") from exc

    # -- external trials: this client evaluates them (docs/external.md) -------------------

    def ask(self, study_id: int) -> Asked:
        """A trial of an external study to evaluate, and the lease that holds it. A 429 (the
        study's ``parallelism`` trials are out) names its wait in ``ApiError.retry_after``;
        a 409 says the study has no trial left to ask."""
        result: Asked = self._json("POST", f"/studies/{study_id}/ask", json={})
        return result

    def report_trial(
        self, study_id: int, number: int, lease: str, step: int, metrics: dict[str, float]
    ) -> Reported:
        """Report a trial's metrics at ``step`` (it renews the lease); the answer says whether
        the study's pruner stopped it (then it is PRUNED already: do not tell it)."""
        body = {"lease": lease, "step": step, "metrics": metrics}
        result: Reported = self._json(
            "POST", f"/studies/{study_id}/trials/{number}/report", json=body
        )
        return result

    def tell(
        self,
        study_id: int,
        number: int,
        lease: str,
        state: TellState,
        metrics: dict[str, float] | None = None,
        reason: str | None = None,
    ) -> Trial:
        """End a trial: ``complete`` (``metrics`` holding every objective's), ``fail`` (with a
        ``reason``) or ``pruned``; the trial as ``GET .../trials/{number}`` shows it."""
        body: dict[str, Any] = {"lease": lease, "state": state}
        if metrics is not None:
            body["metrics"] = metrics
        if reason is not None:
            body["reason"] = reason
        result: Trial = self._json("POST", f"/studies/{study_id}/trials/{number}/tell", json=body)
        return result

    def renew(self, study_id: int, number: int, lease: str) -> Renewed:
        """Renew a trial's lease without a report (a heartbeat during a long step)."""
        path = f"/studies/{study_id}/trials/{number}/renew"
        result: Renewed = self._json("POST", path, json={"lease": lease})
        return result

    # -- jobs: pre-flight checks and ensembles ---------------------------------------------

    def check(
        self, spec: dict[str, Any], points: int = 3, seed: int = 0, wait: float = 0
    ) -> dict[str, Any]:
        """Start a pre-flight check of a study spec (nothing is stored); the job, ended if it
        ended within ``wait`` seconds (at most 60)."""
        params = {"points": points, "seed": seed, "wait": wait}
        result: dict[str, Any] = self._json(
            "POST", "/studies:check", json=spec, params=params, timeout=self._waiting(wait)
        )
        return result

    def job(self, job_id: int, wait: float = 0) -> dict[str, Any]:
        """A job (a check, an ensemble), once ended or after ``wait`` seconds (at most 60)."""
        result: dict[str, Any] = self._json(
            "GET", f"/jobs/{job_id}", params={"wait": wait}, timeout=self._waiting(wait)
        )
        return result

    def ensemble(
        self, study_id: int, top_k: int = 5, method: str = "average", wait: float = 0
    ) -> dict[str, Any]:
        """Start an ensemble of the study's ``top_k`` best trials; the job, as :meth:`job`."""
        result: dict[str, Any] = self._json(
            "POST",
            f"/studies/{study_id}/ensembles",
            json={"top_k": top_k, "method": method},
            params={"wait": wait},
            timeout=self._waiting(wait),
        )
        return result

    def ensemble_artifact(self, study_id: int, ensemble_id: int, kind: ArtifactKind) -> bytes:
        """An ensemble's ``torchscript``, ``weights`` or ``spec`` file."""
        path = f"/studies/{study_id}/ensembles/{ensemble_id}/artifacts/{kind}"
        return self._request("GET", path).content

    def _waiting(self, wait: float) -> httpx.Timeout:
        # The server holds the answer up to ``wait`` seconds: read that much longer.
        base = self._http.timeout
        return httpx.Timeout(base.connect, read=(base.read or 30.0) + wait)

    # -- datasets and keys ----------------------------------------------------------------

    def upload(self, path: Path, **form: str) -> dict[str, Any]:
        """Upload a ``.npz`` or ``.csv`` dataset (form fields: name, task, target)."""
        with path.open("rb") as f:
            result: dict[str, Any] = self._json(
                "POST", "/datasets", files={"file": (path.name, f)}, data=form
            )
        return result

    def create_key(self, tenant: str, name: str = "", admin: bool = False) -> Key:
        """A new API key (admin only); ``key`` holds it, shown this once."""
        body = {"tenant": tenant, "name": name, "admin": admin}
        result: Key = self._json("POST", "/keys", json=body)
        return result

    def keys(self) -> list[Key]:
        result: list[Key] = self._json("GET", "/keys")
        return result

    def revoke_key(self, key_id: int) -> Key:
        result: Key = self._json("DELETE", f"/keys/{key_id}")
        return result

    def quota(self, tenant: str | None = None) -> dict[str, Any]:
        """A tenant's limits and usage: the caller's own, or (admins) ``tenant``'s."""
        path = "/quota" if tenant is None else f"/tenants/{tenant}/quota"
        result: dict[str, Any] = self._json("GET", path)
        return result

    def set_quota(self, tenant: str, **limits: int | float | None) -> dict[str, Any]:
        """Set some of a tenant's limits (admins); None restores the default."""
        result: dict[str, Any] = self._json("PUT", f"/tenants/{tenant}/quota", json=limits)
        return result

    # -- transport ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach tuneforge at {self.url}: {exc}") from exc
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._request(method, path, **kwargs)
        return resp.json() if resp.content else None
