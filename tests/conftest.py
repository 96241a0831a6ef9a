import os

import pytest

from tests import processes, servers
from tests.servers import (  # noqa: F401 - session fixtures
    kafka_address,
    postgres_dsn,
    redis_address,
)

#: how long a process stopped at the very end of the run may take to exit
SETTLE = 5.0
#: whether the session adopts orphans (Linux): only then can it find them all
_SUBREAPER = pytest.StashKey[bool]()


def pytest_sessionstart(session: pytest.Session) -> None:
    # orphans of the tests (a SIGKILLed tether run's app) become our children, not init's
    session.config.stash[_SUBREAPER] = processes.become_subreaper()


@pytest.hookimpl(trylast=True)  # after the session fixtures (test servers) are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """No process started by the tests may outlive them: any left is killed and named, and
    under CI=true it fails the run."""
    if not session.config.stash.get(_SUBREAPER, False):
        return
    left = processes.leftovers(os.getpid(), SETTLE)
    if not left:
        return
    lines = [f"  pid {p.pid}: {p.command}" for p in left]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"\n{len(left)} process(es) started by the tests were still running (killed):",
            red=True,
        )
        for line in lines:
            reporter.write_line(line)
    if servers.IN_CI:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
