"""The external-trial client against a scripted server (:mod:`.external_server`): the bodies
it sends for ask, report, tell and renew; a 429's wait; a 409 that ends the loop; a trial the
study's pruner stopped is never told; an objective's exception fails its trial with its
reason; the shapes an objective may return; the lease renewed while a long step runs."""

import time
from typing import Any

import pytest

from service.client.api import ApiError
from service.client.external import ExternalTrial, LeaseLost, RemoteStudy, TrialFailed, TrialPruned
from tests.service.client.external_server import (
    NOTHING_LEFT,
    RENEWED,
    TOLD,
    TWO_OBJECTIVES,
    Server,
    asked,
    reported,
    scripted,
    study_json,
)


def serve(*asks: Any, **routes: list[Any]) -> Server:
    """Study 7's asks answered with ``asks`` then "nothing left"; ``routes``: report, tell,
    renew answers (default: go on, told, renewed)."""
    return Server(
        answers={
            "POST /studies/7/ask": [*asks, NOTHING_LEFT],
            **{
                f"POST /studies/7/trials/{n}/{verb}": routes.get(verb, [default])
                for n in range(4)
                for verb, default in (("report", reported()), ("tell", TOLD), ("renew", RENEWED))
            },
        }
    )


def test_study_is_still_the_study_s_json_with_its_key_sent() -> None:
    server = serve()
    study = scripted(server).study(7)
    assert isinstance(study, RemoteStudy) and isinstance(study, dict)
    assert study == study_json() and study["status"] == "running"
    assert study.objectives == ["val_loss"] and study.metrics == ["val_loss", "accuracy"]
    assert server.headers[0]["Authorization"] == "Bearer tf_secret"


def test_ask_report_tell_send_the_lease_step_and_metrics() -> None:
    server = serve(asked(0, lr=0.1, depth=3))
    seen: list[tuple[int, dict[str, Any], int]] = []

    def objective(trial: ExternalTrial) -> float:
        seen.append((trial.number, trial.params, trial.seed))
        trial.report(0.5, 1)  # a number: the first objective's metric
        trial.report({"val_loss": 0.4, "accuracy": 0.8}, step=2)
        assert not trial.should_prune()
        return 0.3

    outcomes = scripted(server).study(7).optimize(objective)

    assert seen == [(0, {"lr": 0.1, "depth": 3}, 100)]
    assert server.paths() == [
        "",
        "/ask",
        "/trials/0/report",
        "/trials/0/report",
        "/trials/0/tell",
        "/ask",
    ]
    assert server.sent("/ask") == [{}, {}]
    assert server.sent("/report") == [
        {"lease": "L0", "step": 1, "metrics": {"val_loss": 0.5}},
        {"lease": "L0", "step": 2, "metrics": {"val_loss": 0.4, "accuracy": 0.8}},
    ]
    assert server.sent("/tell") == [
        {"lease": "L0", "state": "complete", "metrics": {"val_loss": 0.3}}
    ]
    [outcome] = outcomes
    assert (outcome.number, outcome.state, outcome.metrics, outcome.step) == (
        0,
        "complete",
        {"val_loss": 0.3},
        2,
    )


def test_a_409_on_ask_ends_optimize_at_once() -> None:
    server = serve()
    study = scripted(server).study(7)
    outcomes = study.optimize(lambda trial: pytest.fail("no trial was asked"))
    assert outcomes == []
    assert (
        study.stop_reason is not None and "every trial of its budget was asked" in study.stop_reason
    )
    assert server.paths() == ["", "/ask"]


def test_a_429_waits_its_retry_after_and_asks_again() -> None:
    server = serve(
        (429, {"detail": "2 trials out: parallelism 2"}, {"Retry-After": "0.4"}), asked(0)
    )
    study = scripted(server).study(7)
    start = time.monotonic()
    outcomes = study.optimize(lambda trial: 1.0)
    assert time.monotonic() - start >= 0.4
    assert [o.number for o in outcomes] == [0]
    assert server.paths() == ["", "/ask", "/ask", "/trials/0/tell", "/ask"]


def test_a_429_longer_than_the_time_left_ends_optimize_without_waiting() -> None:
    server = serve((429, {"detail": "busy"}, {"Retry-After": "30"}))
    study = scripted(server).study(7)
    start = time.monotonic()
    assert study.optimize(lambda trial: 1.0, timeout=2) == []
    assert time.monotonic() - start < 1.5 and study.stop_reason == "timeout"


def test_n_trials_bounds_the_trials_evaluated() -> None:
    server = serve(asked(0), asked(1), asked(2))
    outcomes = scripted(server).study(7).optimize(lambda trial: 1.0, n_trials=2)
    assert [o.number for o in outcomes] == [0, 1]
    assert server.paths().count("/ask") == 2


@pytest.mark.parametrize("obeys", [True, False], ids=["stops", "ignores-the-answer"])
def test_a_trial_the_study_s_pruner_stopped_is_not_told(obeys: bool) -> None:
    server = serve(asked(0), report=[reported(), reported(should_prune=True)])

    def objective(trial: ExternalTrial) -> float:
        for step in range(5):
            trial.report(1.0 - step / 10, step)
            if trial.should_prune() and obeys:
                raise TrialPruned()
        return 0.5

    [outcome] = scripted(server).study(7).optimize(objective)
    assert (outcome.state, outcome.step, outcome.reason) == (
        "pruned",
        1,
        "asha: below the rung's cut",
    )
    assert server.sent("/tell") == []
    assert len(server.sent("/report")) == 2  # nothing more is sent once pruned


def test_optuna_s_trial_pruned_by_its_name_tells_the_trial_pruned() -> None:
    class TrialPruned(Exception):  # as optuna.TrialPruned: known by its name
        pass

    def objective(trial: ExternalTrial) -> float:
        raise TrialPruned("my own rule")

    server = serve(asked(0))
    [outcome] = scripted(server).study(7).optimize(objective)
    assert outcome.state == "pruned"
    assert server.sent("/tell") == [{"lease": "L0", "state": "pruned", "reason": "my own rule"}]


def test_an_exception_fails_the_trial_with_its_reason_and_is_raised_again() -> None:
    def objective(trial: ExternalTrial) -> float:
        raise RuntimeError("loss is nan at step 3")

    server = serve(asked(0), asked(1))
    with pytest.raises(RuntimeError, match="loss is nan"):
        scripted(server).study(7).optimize(objective)
    assert server.sent("/tell") == [
        {"lease": "L0", "state": "fail", "reason": "RuntimeError: loss is nan at step 3"}
    ]
    assert server.paths().count("/ask") == 1  # the loop stopped there


def test_a_reason_is_cut_to_the_api_s_500_characters() -> None:
    def objective(trial: ExternalTrial) -> float:
        raise TrialFailed("x" * 2000)

    server = serve(asked(0))
    scripted(server).study(7).optimize(objective)
    assert server.sent("/tell")[0]["reason"] == "x" * 500


def test_caught_exceptions_and_trial_failed_fail_the_trial_and_go_on() -> None:
    def objective(trial: ExternalTrial) -> float:
        if trial.number == 0:
            raise KeyError("lr")
        raise TrialFailed("diverged")

    server = serve(asked(0), asked(1))
    outcomes = scripted(server).study(7).optimize(objective, catch=(KeyError,))
    assert [(o.state, o.reason) for o in outcomes] == [
        ("fail", "KeyError: 'lr'"),
        ("fail", "diverged"),
    ]
    assert [b["reason"] for b in server.sent("/tell")] == ["KeyError: 'lr'", "diverged"]


@pytest.mark.parametrize(
    ("returned", "told"),
    [
        ([0.3, 0.9], {"val_loss": 0.3, "accuracy": 0.9}),
        ((0.3, 0.9), {"val_loss": 0.3, "accuracy": 0.9}),
        ({"accuracy": 0.9, "val_loss": 0.3}, {"accuracy": 0.9, "val_loss": 0.3}),
    ],
)
def test_a_sequence_gives_each_objective_in_order_a_dict_names_them(
    returned: Any, told: Any
) -> None:
    server = serve(asked(0))
    scripted(server, study_json(TWO_OBJECTIVES)).study(7).optimize(lambda trial: returned)
    assert server.sent("/tell") == [{"lease": "L0", "state": "complete", "metrics": told}]


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        (0.3, "ValueError: the objective's result has no accuracy"),
        ([0.3], "ValueError: the objective's result has 1 values for the objectives"),
        ({"val_loss": 0.3}, "ValueError: the objective's result has no accuracy"),
        (None, "TypeError: the objective's result is None"),
        ([0.3, float("nan")], "ValueError: the objective's result's accuracy is nan"),
    ],
)
def test_a_result_without_every_objective_fails_the_trial(returned: Any, reason: str) -> None:
    server = serve(asked(0))
    with pytest.raises((ValueError, TypeError)):
        scripted(server, study_json(TWO_OBJECTIVES)).study(7).optimize(lambda trial: returned)
    [told] = server.sent("/tell")
    assert told["state"] == "fail" and told["reason"].startswith(reason), told


def test_the_lease_is_renewed_while_a_long_step_runs() -> None:
    server = serve(asked(0, lease_s=0.6))  # renewed every 0.2 s

    def objective(trial: ExternalTrial) -> float:
        time.sleep(0.9)  # one long step, no report
        return 0.2

    scripted(server).study(7).optimize(objective)
    renewals = server.sent("/renew")
    assert 2 <= len(renewals) <= 5 and renewals[0] == {"lease": "L0"}
    assert server.paths()[-2:] == ["/trials/0/tell", "/ask"]  # no renewal after the tell


def test_reports_renew_the_lease_so_no_heartbeat_is_sent_between_them() -> None:
    server = serve(asked(0, lease_s=0.9))  # a heartbeat 0.3 s after the last word

    def objective(trial: ExternalTrial) -> float:
        for step in range(8):
            time.sleep(0.1)
            trial.report(0.5, step)
        return 0.5

    scripted(server).study(7).optimize(objective)
    assert len(server.sent("/report")) == 8 and server.sent("/renew") == []


def test_a_lease_the_service_ended_makes_should_prune_true_and_nothing_is_told() -> None:
    gone = (409, {"detail": "trial 0's lease expired"})
    server = serve(asked(0, lease_s=0.15), renew=[gone])

    def objective(trial: ExternalTrial) -> float:
        deadline = time.monotonic() + 5
        while not trial.should_prune() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(LeaseLost, match="lease expired"):
            trial.report(0.1, 0)
        raise TrialPruned()

    [outcome] = scripted(server).study(7).optimize(objective)
    assert outcome.state == "lost" and "lease expired" in str(outcome.reason)
    assert server.sent("/tell") == [] and server.sent("/report") == []


def test_a_report_refused_as_expired_loses_the_trial_and_the_loop_goes_on() -> None:
    server = serve(asked(0), asked(1), report=[(409, {"detail": "lease expired"}), reported()])

    def objective(trial: ExternalTrial) -> float:
        trial.report(0.4, 0)
        return 0.4

    outcomes = scripted(server).study(7).optimize(objective)
    assert [(o.number, o.state) for o in outcomes] == [(0, "lost"), (1, "complete")]
    assert [b["lease"] for b in server.sent("/tell")] == ["L1"]


def test_a_tell_refused_with_409_is_a_lost_trial() -> None:
    server = serve(asked(0), tell=[(409, {"detail": "trial 0 already finished"})])
    [outcome] = scripted(server).study(7).optimize(lambda trial: 0.1)
    assert outcome.state == "lost" and "already finished" in str(outcome.reason)


def test_other_refusals_are_raised() -> None:
    server = Server(answers={"POST /studies/7/ask": [(404, {"detail": "study 7 not found"})]})
    with pytest.raises(ApiError) as caught:
        scripted(server).study(7).optimize(lambda trial: 0.1)
    assert caught.value.status == 404


def test_a_study_whose_trials_run_on_the_cluster_cannot_be_optimized_here() -> None:
    server = serve(asked(0))
    with pytest.raises(ValueError, match="task is train"):
        scripted(server, study_json(kind="train")).study(7).optimize(lambda trial: 0.1)
    assert server.paths() == [""]


def test_client_methods_send_the_contract_s_bodies() -> None:
    server = serve(asked(3), tell=[TOLD])
    client = scripted(server)
    assert client.ask(7)["lease"] == "L3"
    assert client.report_trial(7, 3, "L3", 2, {"val_loss": 0.2})["should_prune"] is False
    client.tell(7, 3, "L3", "fail", reason="out of memory")
    assert client.renew(7, 3, "L3") == RENEWED[1]
    assert server.seen == [
        ("POST", "/studies/7/ask", {}),
        (
            "POST",
            "/studies/7/trials/3/report",
            {"lease": "L3", "step": 2, "metrics": {"val_loss": 0.2}},
        ),
        (
            "POST",
            "/studies/7/trials/3/tell",
            {"lease": "L3", "state": "fail", "reason": "out of memory"},
        ),
        ("POST", "/studies/7/trials/3/renew", {"lease": "L3"}),
    ]
