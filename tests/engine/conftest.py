"""Fixtures of the engine tests: the Pulumi toolchain built by ``make toolchain``, a per-session PULUMI_HOME, real
nats-servers with JetStream, and stack projects of the fraud-detection example in temporary directories.

A missing toolchain fails every test with the command that builds it: these tests are the only ones that run a
Kumeo stack under the real engine, and a skipped engine suite proves nothing (``make test`` builds the toolchain
first).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import (
    TIMINGS,
    TOOLCHAIN_BIN,
    engine_environment,
    missing_binaries,
    run_command,
)

from kumeo_iac.local._nats_server import NatsServer


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every ``pulumi``/``kumeo`` command: toolchain on PATH, PULUMI_HOME under a temp dir,
    passphrase secrets, no update check, no plugin downloads."""
    missing = missing_binaries()
    if missing:
        pytest.fail(
            f"the Pulumi toolchain is not built: {', '.join(missing)} missing from {TOOLCHAIN_BIN}; "
            "run `make toolchain`",
            pytrace=False,
        )
    home = tmp_path_factory.mktemp("pulumi-home")
    env = engine_environment(home)
    # The Kubernetes provider is found on PATH (an "ambient" plugin: the engine takes a provider binary on PATH
    # before its plugin cache, whatever version the SDK asks for), so nothing is installed into PULUMI_HOME. Check
    # that the engine starts at all, so a broken binary fails here with its own message.
    run_command(["pulumi", "version"], cwd=home, env=env, timeout=60)
    return env


@pytest.fixture(scope="module")
def jetstream() -> Iterator[NatsServer]:
    """One nats-server with JetStream for a test module (its stack lives as long)."""
    server = NatsServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if not TIMINGS:
        return
    by_command: dict[str, list[float]] = {}
    for command, seconds in TIMINGS:
        by_command.setdefault(command, []).append(seconds)
    terminalreporter.write_sep("-", "engine commands (count, total s, max s)")
    for command, times in sorted(by_command.items(), key=lambda kv: -sum(kv[1])):
        terminalreporter.write_line(f"{len(times):3d} {sum(times):7.1f} {max(times):6.1f}  {command}")


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
