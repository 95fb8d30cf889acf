"""The simulated executor's runner: jobs take their true work's time, in accelerated time."""

from __future__ import annotations

import pytest

from llmproxy.scheduler.executors import SimulatedRunner, true_work
from llmproxy.scheduler.live import Assignment


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_job_takes_its_true_work_over_gpus_times_scale() -> None:
    clock = FakeClock()
    runner = SimulatedRunner(time_scale=10.0, clock=clock)
    # believed 50 GPU-seconds, truly 100: on 2 GPUs at 10x, 100 / (2 * 10) = 5 wall seconds
    runner.start(Assignment("a", (0, 1), "sim:100", remaining=50.0))

    assert runner.seconds_to_next_end() == pytest.approx(5.0)
    clock.now += 4.0
    (report,) = runner.reports()
    assert not report.finished and report.attained == pytest.approx(80.0)
    clock.now += 1.0
    (report,) = runner.reports()
    assert report.finished and report.attained == pytest.approx(100.0)
    assert runner.seconds_to_next_end() is None  # the ended job is already being reported

    runner.forget({"a"})
    assert runner.reports() == [] and runner.running() == set()


def test_without_a_true_size_the_believed_work_is_used() -> None:
    assert true_work(Assignment("a", (0,), "", remaining=42.0)) == 42.0
    assert true_work(Assignment("a", (0,), "sim:oops", remaining=7.0)) == 7.0


def test_a_stopped_job_is_gone() -> None:
    runner = SimulatedRunner(time_scale=1.0, clock=FakeClock())
    runner.start(Assignment("a", (0,), "sim:10", remaining=10.0))
    runner.stop("a")
    assert runner.running() == set()
