from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.workflows.driver import Driver
from tether.workflow import WorkflowRegistry


@pytest.fixture
def both() -> Iterator[Callable[..., tuple[Driver, Driver]]]:
    """Run one scenario on a hot driver (state kept in memory) and a cold one (history
    replayed every step), assert both stored the same history and the same results, and
    return them."""
    made: list[Driver] = []

    def run(registry: WorkflowRegistry | Callable[[], WorkflowRegistry],
            scenario: Callable[[Driver], Any], **kwargs: Any) -> tuple[Driver, Driver]:
        # a factory gives each driver its own registry (for activities that count calls)
        def make() -> WorkflowRegistry:
            return registry if isinstance(registry, WorkflowRegistry) else registry()

        hot, cold = Driver(make(), hot=True, **kwargs), Driver(make(), hot=False, **kwargs)
        made.extend([hot, cold])
        scenario(hot)
        scenario(cold)
        assert hot.history == cold.history
        assert {i: (r.status, r.output, r.failure, r.custom_status)
                for i, r in hot.last.items()} == {
            i: (r.status, r.output, r.failure, r.custom_status) for i, r in cold.last.items()}
        assert hot.replayed_events == 0
        return hot, cold

    yield run
    for d in made:
        d.close()
