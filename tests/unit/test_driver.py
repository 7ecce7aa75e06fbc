"""The one round loop: start order, follow-ups, acceptance in start order, faults, timeouts.

A toy method and two executors: the in-process one, and a scripted one whose steps finish in a
chosen order (as on Ray, where the slowest hospital may be the first to start).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from chainlearn_ray.errors import ChainlearnError, HospitalFailure
from chainlearn_ray.methods.base import FederatedMethod
from chainlearn_ray.methods.messages import ClientResult, RoundConfig, TrainSettings
from chainlearn_ray.protocol.rounds import ATTENDED, RoundOutcome
from chainlearn_ray.runtime.driver import Driver
from chainlearn_ray.runtime.executor import StepFailed
from chainlearn_ray.runtime.in_process import InProcessExecutor
from chainlearn_ray.runtime.scheduling import EarlyStart, NoAhead, start_order

SETTINGS = TrainSettings(epochs=1)


class Echo(FederatedMethod):
    """Each client answers ``fit`` with its id; ``ask`` clients then get a ``confirm`` follow-up.
    The server logs every verb it sees."""

    name: ClassVar[str] = "echo"

    def __init__(self, ask: Sequence[str] = (), tolerant: bool = True,
                 refuse: Sequence[str] = ()) -> None:
        super().__init__()
        self.ask, self.tolerant, self.refuse = set(ask), tolerant, set(refuse)
        self.log: list[tuple[str, ...]] = []

    def _configure(self, round_: int, phase: str) -> RoundConfig:
        self.log.append(("configure", str(round_)))
        return RoundConfig(round_, phase, "go")

    def configure_ahead(self, round_: int) -> RoundConfig | None:
        return RoundConfig(round_, "fit", "go")

    def review(self, result: ClientResult) -> RoundConfig | None:
        self.log.append(("review", result.hospital_id, result.phase))
        if result.phase == "fit" and result.hospital_id in self.ask:
            return RoundConfig(result.round, "confirm", result.hospital_id, aside=True)
        return None

    def accept(self, result: ClientResult) -> None:
        if result.hospital_id in self.refuse:
            raise HospitalFailure("refused")
        self.log.append(("accept", result.hospital_id, result.phase))

    def dropped(self, round_: int, client: str, status: str, reason: str) -> None:
        if not self.tolerant:
            super().dropped(round_, client, status, reason)
        self.log.append(("dropped", client, status))

    def _aggregate(self, round_: int, phase: str, results: Sequence[ClientResult]) -> None:
        self.log.append(("aggregate", *(r.hospital_id for r in results)))

    def configure_evaluate(self, round_: int, clients: Sequence[str]) -> dict[str, RoundConfig]:
        return {}

    def evaluate(self, round_: int, results: Sequence[ClientResult]) -> RoundOutcome:
        return RoundOutcome(round_, [], 0)

    def client_step(self, client: Any, config: RoundConfig,
                    settings: TrainSettings) -> ClientResult:
        return ClientResult(client.client_id, "", config.round, config.phase, client.n,
                            config.payload)


class Toy:
    """A hosted client with ``n`` samples; ``fail``: its steps raise."""

    threads = None

    def __init__(self, method: FederatedMethod, client_id: str, n: int,
                 fail: bool = False) -> None:
        self.method, self.client_id, self.n, self.fail = method, client_id, n, fail

    def step(self, config: RoundConfig) -> ClientResult:
        if self.fail:
            raise HospitalFailure("broken")
        return self.method.client_step(self, config, SETTINGS)

    def describe(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "n_samples": self.n}


class Step:
    def __init__(self, client: str, config: RoundConfig, result: ClientResult | None) -> None:
        self.client, self.config, self.result = client, config, result


class Scripted(InProcessExecutor):
    """Steps run at once but come back in ``finish`` order (clients not listed: never);
    follow-ups come back right away."""

    def __init__(self, clients: dict[str, Toy], finish: Sequence[str]) -> None:
        super().__init__(clients)
        self.finish = list(finish)
        self.started: list[str] = []
        self.abandoned: list[str] = []

    def start(self, client: str, config: RoundConfig) -> Step:
        self.started.append(f"{client}:{config.phase}")
        done = super().start(client, config)
        return Step(client, config, done.result)

    def wait(self, handles: Sequence[Any], timeout: float | None) -> Any | None:
        for h in handles:
            if h.config.aside:
                return h
        for name in self.finish:
            for h in handles:
                if h.client == name:
                    self.finish.remove(name)
                    return h
        return None

    def result(self, handle: Any) -> ClientResult:
        if handle.result is None:
            raise StepFailed("HospitalFailure")
        return handle.result  # type: ignore[no-any-return]

    def abandon(self, client: str) -> None:
        self.abandoned.append(client)


def _toys(method: FederatedMethod, sizes: dict[str, int],
          failing: Sequence[str] = ()) -> dict[str, Toy]:
    return {c: Toy(method, c, n, c in failing) for c, n in sizes.items()}


SIZES = {"a": 10, "b": 30, "c": 20}


def test_steps_start_largest_first_and_are_accepted_in_that_order() -> None:
    method = Echo(ask=["b", "c"])
    executor = Scripted(_toys(method, SIZES), finish=["a", "c", "b"])
    Driver(method, executor, list(SIZES)).run_round(1)
    assert executor.started[:3] == ["b:fit", "c:fit", "a:fit"]
    accepted = [e[1] for e in method.log if e[0] == "accept"]
    assert accepted == ["b", "c", "a"]  # start order, whatever order they finished in
    reviews = [e[1:] for e in method.log if e[0] == "review"]
    assert reviews[:2] == [("a", "fit"), ("c", "fit")]  # reviewed as they arrive
    assert ("c", "confirm") in reviews and ("b", "confirm") in reviews
    # a follow-up's result is the one accepted; aggregate sees participant order
    assert ("accept", "b", "confirm") in method.log
    assert method.log[-1] == ("aggregate", "a", "b", "c")


def test_a_failed_step_drops_its_client_and_the_rest_goes_on() -> None:
    method = Echo()
    executor = InProcessExecutor(_toys(method, SIZES, failing=["c"]))
    Driver(method, executor, list(SIZES)).run_round(1)
    assert ("dropped", "c", "failed") in method.log
    assert [e[1] for e in method.log if e[0] == "accept"] == ["b", "a"]
    assert method.log[-1] == ("aggregate", "a", "b")


def test_failures_in_review_or_accept_drop_the_client() -> None:
    method = Echo(refuse=["a"])
    Driver(method, InProcessExecutor(_toys(method, SIZES)), list(SIZES)).run_round(1)
    assert ("dropped", "a", "rejected") in method.log  # the server refused its result
    assert method.log[-1] == ("aggregate", "b", "c")


class DiesOnce(Scripted):
    """Client ``c``'s first step dies with its process (Ray restarts the process)."""

    def start(self, client: str, config: RoundConfig) -> Step:
        step = super().start(client, config)
        if client == "c" and self.started.count("c:fit") == 1:
            step.result = None
        return step

    def result(self, handle: Any) -> ClientResult:
        if handle.result is None:
            raise StepFailed("RayActorError", died=True)
        return handle.result  # type: ignore[no-any-return]


def test_a_client_whose_process_died_runs_again_within_the_round() -> None:
    method = Echo()
    executor = DiesOnce(_toys(method, SIZES), finish=["c", "b", "a", "c"])
    driver = Driver(method, executor, list(SIZES))
    seen: list[tuple[str, int, dict[str, Any]]] = []
    driver.observer = lambda *e: seen.append(e)
    outcome = driver.run_round(1)
    assert outcome.restarted == ("c",)
    assert ("restarted", 1, {"hospital": "c"}) in seen
    assert executor.started.count("c:fit") == 2
    assert not [e for e in method.log if e[0] == "dropped"]
    assert method.log[-1] == ("aggregate", "a", "b", "c")
    # past the round's deadline there is no time for it: it misses the round
    method = Echo()
    executor = DiesOnce(_toys(method, SIZES), finish=["c", "b", "a"])
    Driver(method, executor, list(SIZES), round_timeout=1e-9).run_round(1)
    assert executor.started.count("c:fit") == 1
    assert ("dropped", "c", "failed") in method.log


def test_a_method_that_cannot_lose_a_client_stops_the_run() -> None:
    method = Echo(tolerant=False)
    with pytest.raises(HospitalFailure, match="rerun echo"):
        Driver(method, InProcessExecutor(_toys(method, SIZES, failing=["a"])),
               list(SIZES)).run_round(1)


def test_a_round_timeout_times_out_what_still_runs() -> None:
    method = Echo(ask=["b"])
    executor = Scripted(_toys(method, SIZES), finish=["b", "a"])  # c never finishes
    outcome = Driver(method, executor, list(SIZES), round_timeout=0.01).run_round(1)
    assert executor.abandoned == ["c"]
    assert ("dropped", "c", "timed_out") in method.log
    assert method.log[-1] == ("aggregate", "a", "b")
    assert outcome.round == 1 and outcome.train_seconds >= 0


def test_attendance_and_early_starts_are_checked_before_anything_runs() -> None:
    method = Echo()
    executor = InProcessExecutor(_toys(method, SIZES))
    executor.started_ahead = lambda round_: {"c"}  # type: ignore[method-assign]
    with pytest.raises(ChainlearnError, match="started training early"):
        Driver(method, executor, list(SIZES)).run_round(2, ["a", "b"])
    assert method.log == []


def test_the_same_steps_run_in_process_and_scripted() -> None:
    runs = []
    for make in (lambda m: InProcessExecutor(_toys(m, SIZES)),
                 lambda m: Scripted(_toys(m, SIZES), finish=["c", "a", "b"])):
        method = Echo(ask=["a"])
        Driver(method, make(method), list(SIZES)).run_round(1)
        runs.append([e for e in method.log if e[0] in ("accept", "aggregate")])
    assert runs[0] == runs[1]


def test_start_order_and_early_start() -> None:
    config = RoundConfig(2, "fit")
    assert start_order(["a", "b", "c"], SIZES, config) == ["b", "c", "a"]
    assert start_order(["a", "b", "c"], SIZES, RoundConfig(0, "poc", timed=True)) == [
        "a", "b", "c"]
    launched: list[str] = []
    held = [True]
    early = EarlyStart(config, ["a", "b", "c"], ["a", "b"], {1: ["a", "b"], 2: ["c"]},
                       lambda cs: start_order(cs, SIZES, config),
                       lambda c, _cfg: launched.append(c), hold=lambda: held[0])
    through: Callable[[str], bool] = lambda c: c == "a"  # noqa: E731
    early.start_ready(through)
    assert launched == []  # held while timed steps measure
    held[0] = False
    early.start_ready(through)
    assert launched == ["c"]  # process 2 has nobody in this round; process 1 waits for b
    early.start_ready(lambda c: True)
    assert launched == ["c", "b", "a"]
    NoAhead().start_ready(through)


def test_baseline_evaluation_goes_through_the_client() -> None:
    from chainlearn_ray.methods.fedmd import FedMD
    from chainlearn_ray.methods.messages import EVALUATE

    method = FedMD()
    method.bind_test(np.array([0, 1]), 2)
    configs = method.configure_evaluate(3, ["a", "b"])
    assert list(configs) == ["a", "b"] and configs["a"].phase == EVALUATE
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    results = [ClientResult(c, "", 3, "evaluate", 1, probs) for c in ("a", "b")]
    outcome = method.evaluate(3, results)
    assert outcome.ensemble["accuracy"] == 1.0 and outcome.hospitals[0].status == ATTENDED
