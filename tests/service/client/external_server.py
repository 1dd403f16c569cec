"""A scripted tuneforge for the external-trial client's fast tests: ``httpx.MockTransport``
answers each ``METHOD /path`` from a list (consumed in order, the last one repeating) and
records every request the client sent."""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.client.api import Client

Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]

OBJECTIVE = [{"metric": "val_loss", "direction": "minimize"}]
TWO_OBJECTIVES = [*OBJECTIVE, {"metric": "accuracy", "direction": "maximize"}]


def study_json(objectives: list[dict[str, str]] = OBJECTIVE, kind: str = "external") -> Any:
    task = {"kind": kind, "metrics": ["val_loss", "accuracy"], "lease_s": 60.0}
    return {
        "id": 7,
        "name": "ext",
        "status": "running",
        "spec": {"objectives": objectives, "task": task},
    }


def asked(number: int, lease_s: float = 60.0, **params: Any) -> tuple[int, Any]:
    return 201, {
        "number": number,
        "params": params or {"lr": 0.01},
        "seed": 100 + number,
        "lease": f"L{number}",
        "lease_s": lease_s,
        "lease_expires_at": "2026-01-02T03:05:00Z",
    }


def reported(should_prune: bool = False) -> tuple[int, Any]:
    reason = "asha: below the rung's cut" if should_prune else None
    return 200, {
        "should_prune": should_prune,
        "reason": reason,
        "lease_expires_at": "2026-01-02T03:06:00Z",
    }


NOTHING_LEFT = (
    409,
    {"detail": "study 7 has no trial left to ask: every trial of its budget was asked"},
)
TOLD = (200, {"number": 0, "state": "COMPLETE"})
RENEWED = (200, {"lease_expires_at": "2026-01-02T03:07:00Z"})


@dataclass
class Server:
    """Answers ``answers["POST /studies/7/ask"]`` in order (the last repeats; a callable is
    called with the request's JSON); ``seen`` holds (method, path, JSON body, monotonic time)."""

    answers: dict[str, list[Answer | Callable[[Any], Answer]]] = field(default_factory=dict)
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        body = json.loads(request.content) if request.content else None
        key = f"{request.method} {path}"
        with self.lock:
            self.seen.append((request.method, path, body))
            self.headers.append(request.headers)
            queue = self.answers.get(key)
            if not queue:
                return httpx.Response(404, json={"detail": f"no answer for {key}"})
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            answer = answer(body)
        status, content, *rest = answer
        return httpx.Response(status, json=content, headers=rest[0] if rest else None)

    def sent(self, suffix: str) -> list[Any]:
        """The JSON bodies of the requests whose path ends with ``suffix`` (``/tell``)."""
        with self.lock:
            return [body for _, path, body in self.seen if path.endswith(suffix)]

    def paths(self) -> list[str]:
        with self.lock:
            return [path.removeprefix("/studies/7") for _, path, _ in self.seen]


def scripted(server: Server, study: Any | None = None) -> Client:
    """A client of ``server`` (with study 7 as ``study`` describes it)."""
    server.answers.setdefault("GET /studies/7", [(200, study or study_json())])
    return Client("http://tuneforge.test", "tf_secret", transport=httpx.MockTransport(server))
