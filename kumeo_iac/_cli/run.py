"""``kumeo run``, ``kumeo send`` and ``kumeo tail``: workflows running on NATS, from this terminal.

stdout carries results only, one JSON line per message on a target or dead-letter subject
(``{"subject", "event_id", "data"}``, dead letters add ``"error"``), so it can be piped into ``jq`` or a file;
progress, notes and problems go to stderr. Exit codes: 0 drained (dead letters are results too), 1 the workflow or
the input has problems or the run did not drain in time, 2 bad usage, 130/143 interrupted by SIGINT/SIGTERM
(without ``--follow``; with it, a signal is the normal way to stop and exits 0 after draining).

After the first SIGINT/SIGTERM the run ends within ``DRAIN_SECONDS`` (10 s): sources stop, events in flight finish
(with ``--follow`` the workflow drains for up to half of it), agent processes get SIGTERM and then SIGKILL, and a
watchdog thread kills whatever is left (agents, the embedded nats-server) and exits when the time is up. A second
signal does that at once. The input is published and drained within ``--timeout``, whatever happens to the
embedded nats-server (see :mod:`kumeo_iac.local._runner` for how agents and the server are supervised).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumeo_iac.errors import KumeoError

if TYPE_CHECKING:
    from kumeo_iac.local import ReviewWatch

__all__ = ["run_run", "run_send", "run_tail"]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
#: After SIGINT/SIGTERM, the run exits within this many seconds (drain, stop the agents, kill what is left).
DRAIN_SECONDS = 10.0
FOLLOW_DRAIN_SECONDS = DRAIN_SECONDS  # the former name


class _Shutdown:
    """The first signal sets a deadline ``DRAIN_SECONDS`` away that a watchdog thread enforces; a second signal
    stops everything at once. The hard stop SIGKILLs the agent processes and the embedded nats-server, then exits
    ``128 + signal`` without waiting for anything (a stuck event loop cannot hold it)."""

    def __init__(self, progress: Any, stop: asyncio.Event) -> None:
        self.progress = progress
        self.stop = stop
        self.received: list[int] = []
        self.deadline: float | None = None
        self.runner: Any = None
        self.timer: threading.Timer | None = None

    def on_signal(self, sig: int) -> None:
        self.received.append(sig)
        if len(self.received) == 1:
            self.deadline = time.monotonic() + DRAIN_SECONDS
            self.timer = threading.Timer(DRAIN_SECONDS, self.hard_stop,
                                         ((f"did not stop within the drain timeout of {DRAIN_SECONDS:g} s; "
                                           "killed the agents and the nats-server"),))
            self.timer.daemon = True
            self.timer.start()
            self.stop.set()
        elif len(self.received) == 2:
            self.progress.note("second signal: killing the agents and the nats-server now")
            self.hard_stop(None)

    def left(self, default: float) -> float:
        """Seconds a step may still take: ``default`` before any signal, the time to the deadline after one."""
        if self.deadline is None:
            return default
        return max(0.1, min(default, self.deadline - time.monotonic() - 0.5))

    def hard_stop(self, message: str | None) -> None:
        # Raw writes: the main thread may hold sys.stderr's lock, and result lines are flushed as they are written.
        if message:
            with contextlib.suppress(OSError):
                os.write(2, f"\nkumeo run: error: {message}\n".encode())
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.kill_now()
        os._exit(128 + int(self.received[0] if self.received else signal.SIGTERM))

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Stdout:
    """Writes result lines to stdout; a closed pipe (``kumeo run … | head``) silences it instead of failing."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, line: str) -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.closed = True
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())


# -- kumeo run ----------------------------------------------------------------------------------------------------


def _load_plan(path: Path) -> Any:
    """Read and validate strictly (missing files are errors), then compile; KumeoError carries the diagnostics.

    Warnings are printed here, on stderr, before the run starts.
    """
    from kumeo_iac._cli._report import emit
    from kumeo_iac._load import load_file
    from kumeo_iac.compile import compile_program

    loaded = load_file(path, strict_files=True)
    if loaded.ok:
        emit(loaded.diagnostics)
    return compile_program(loaded.program_or_raise(), base_dir=path.parent)


def _print_error(exc: KumeoError, path: Path) -> None:
    from kumeo_iac._cli._report import emit_error

    emit_error(exc, path)


def run_run(args: argparse.Namespace) -> int:
    """``kumeo run PATH``: run the workflow locally and print every result and dead letter as a JSON line."""
    path = Path(args.path)
    if args.timeout is not None and args.timeout <= 0:
        _err("kumeo run: error: --timeout must be a positive number of seconds")
        return 2
    try:
        plan = _load_plan(path)
    except KumeoError as exc:
        _print_error(exc, path)
        return 1
    if not plan.workflows:
        _err(f"{path}:1:1: error: the program declares no workflow; nothing to run")
        return 1

    from kumeo_iac.runtime.io import refusals

    refused = [r for wf in plan.workflows for r in refusals(wf)]
    if refused:
        for r in refused:
            _err(r.format(str(path)))
        return 1

    events = None
    if args.input:
        from kumeo_iac.local import read_events

        try:
            events = read_events(args.input)
        except KumeoError as exc:
            _err(str(exc))
            return 1
        for problem in events.problems:
            _err(problem)
    elif not args.follow:
        found = sorted((path.parent / "events").glob("*.jsonl")) if (path.parent / "events").is_dir() else []
        if found:
            listed = ", ".join(str(f) for f in found)
            _err(f"kumeo run: error: no --input given; the workflow's directory has sample events: {listed}")
            _err(f"kumeo run: pass them with --input {found[0]} (or --input - to read standard input)")
            return 2

    level = logging.INFO if args.verbose else logging.WARNING
    from kumeo_iac.local import Progress, ProgressLogHandler

    progress = Progress()
    handler = ProgressLogHandler(progress)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("nats").setLevel(logging.CRITICAL)  # its reconnect chatter at shutdown says nothing new
    logging.getLogger("kumeo_providers").setLevel(max(level, logging.WARNING))
    shutdown: list[_Shutdown] = []
    try:
        return asyncio.run(_run(args, plan, path, events, progress, shutdown))
    finally:
        for s in shutdown:
            s.cancel()
        progress.close()
        root.removeHandler(handler)


async def _run(args: argparse.Namespace, plan: Any, path: Path, events: Any, progress: Any,
               holder: list[_Shutdown]) -> int:
    from kumeo_iac.local import LocalRunner, ReviewWatch

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    shutdown = _Shutdown(progress, stop)
    holder.append(shutdown)
    received = shutdown.received

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown.on_signal, sig)

    stdout = _Stdout()
    exit_code = 0
    async with contextlib.AsyncExitStack() as stack:
        try:
            if args.llm == "local":
                plan = await _use_local_llm(plan, stack, progress)
            runner = LocalRunner(plan, base_dir=path.parent, nats_url=args.nats, processes=args.processes,
                                 on_output=lambda o: stdout.write(o.to_json()),
                                 log_level="INFO" if args.verbose else "WARNING", on_note=progress.note)
            shutdown.runner = runner
            stack.push_async_callback(lambda: runner.stop(timeout=shutdown.left(20.0)))
            if not await _until(runner.start(), stop):
                return _interrupted(received, progress)
            reviews = ReviewWatch(runner)
            if reviews.any:
                progress.reviews = 0
            reviews.start()
            stack.push_async_callback(reviews.stop)
            agents = sum(len(wf.agents) for wf in plan.workflows)
            names = ", ".join(wf.name for wf in plan.workflows)
            how = "one process each" if args.processes else "in-process"
            where = f"{runner.url} (embedded)" if runner.embedded else runner.url
            progress.note(f"workflow {names}: {agents} agent{'s' if agents != 1 else ''} ({how}) on NATS {where}")
            for gateway in runner.gateways:
                for source in gateway.sources:
                    if source.endpoint.kind == "HTTP":
                        progress.note(f"HTTP source {source.endpoint.address!r} listening on {source.url}")
            for agent_id, url in runner.agent_urls().items():
                progress.note(f"agent '{agent_id}' serves its review API on {url} (decisions need a reviewer's "
                              "token: see docs/security.md; or decide in `kumeo dashboard`)")
            live = [s for g in runner.gateways for s in g.sources if s.endpoint.kind in ("HTTP", "Timer")]
            if live and not args.follow:
                progress.note("HTTP and Timer sources run only while the input drains; add --follow to keep them")

            deadline = time.monotonic() + args.timeout  # publishing and draining the input, together
            if events is not None:
                _, source = runner.source_for(args.workflow, args.source)
                token = "" if runner.embedded else f"{uuid.uuid4().hex[:8]}-"
                pairs = [(f"{token}{events.stem}-{line}", payload) for line, payload in events.events]
                lines = {event_id: line for (event_id, _), (line, _) in zip(pairs, events.events, strict=True)}

                def refused(event_id: str, reason: str) -> None:
                    problem = f"{events.name}:{lines[event_id]}: error: {reason}"
                    events.problems.append(problem)
                    _err(problem)

                published = await _until(_within(runner.publish(source.subject, pairs, on_refused=refused),
                                                 args.timeout), stop)
                if published is False:
                    return _interrupted(received, progress)
                if published == -1:
                    _err(f"kumeo run: error: the input was not published within {args.timeout:g} s "
                         f"({runner.published} of {len(pairs)} events stored); is the NATS server up?")
                    return 1
                count = published
                extra = f" ({len(events.problems)} bad line{'s' if len(events.problems) != 1 else ''} skipped)" \
                    if events.problems else ""
                progress.note(f"published {count} event{'s' if count != 1 else ''} from {events.name} to "
                              f"{source.subject}{extra}")

            def tick() -> None:
                _count(progress, runner, reviews)
                progress.update()

            if args.follow:
                progress.note("following; Ctrl-C or SIGTERM stops (events in flight are finished first)")
                watch = asyncio.ensure_future(runner.wait_failure())
                ticker = asyncio.ensure_future(_tick_forever(tick))
                try:
                    await _until(watch, stop)
                finally:
                    ticker.cancel()
                for gateway in runner.gateways:
                    await gateway.stop_sources()
                result = await runner.drain(min(args.timeout, shutdown.left(DRAIN_SECONDS) / 2), tick=tick)
                await _final_count(progress, runner, reviews, result.drained)
                if not result.drained:
                    progress.update(force=True)
                    progress.note(f"stopped with events still in flight: {'; '.join(result.holding)}")
                else:
                    progress.note(f"stopped: {progress.counts()}")
                exit_code = 0
            else:
                began = time.monotonic()
                result = await _until(runner.drain(max(0.1, deadline - began), tick=tick), stop)
                if result is False:
                    return _interrupted(received, progress)
                elapsed = time.monotonic() - began
                await _final_count(progress, runner, reviews, result.drained)
                if not result.drained:
                    progress.update(force=True)
                    _err(f"kumeo run: error: the workflow did not drain within {args.timeout:g} s; still holding "
                         f"events: {'; '.join(result.holding)}")
                    exit_code = 1
                else:
                    restarts = runner.agent_restarts + runner.server_restarts
                    extra = f" ({restarts} restart{'s' if restarts != 1 else ''}, see above)" if restarts else ""
                    progress.note(f"drained in {elapsed:.1f} s: {progress.counts()}{extra}")
                    if reviews.count:
                        progress.note(_waiting_note(reviews, path, runner))
                    unreached = [e for e in result.unreached if e not in reviews.event_ids]
                    if unreached:
                        shown = ", ".join(unreached[:5]) + (" …" if len(unreached) > 5 else "")
                        progress.note(f"{len(unreached)} event(s) reached no target or dead-letter subject "
                                      f"(held in a join, or the workflow has no target for them): {shown}")
        except KumeoError as exc:
            _print_error(exc, path)
            exit_code = 1
    if events is not None and events.problems:
        n = len(events.problems)
        _err(f"kumeo run: error: {n} line{'s' if n != 1 else ''} of {events.name} "
             f"{'were not valid events' if n != 1 else 'was not a valid event'} (see above)")
        exit_code = exit_code or 1
    return exit_code


def _count(progress: Any, runner: Any, reviews: ReviewWatch) -> None:
    """Progress from the run: events in, result and dead-letter lines printed, reviews, and the events in flight
    (published, and neither printed on a target or dead-letter subject nor waiting for review)."""
    waiting = reviews.event_ids
    progress.published = runner.published + runner.source_events()
    progress.results = runner.results
    progress.dead_letters = runner.dead_letters
    if reviews.any:
        progress.reviews = len(waiting)
    done = runner.seen_ids | waiting
    from_sources = max(0, runner.source_events() - len(done - runner.input_ids))
    progress.in_flight = len(runner.input_ids - done) + from_sources


async def _final_count(progress: Any, runner: Any, reviews: ReviewWatch, drained: bool) -> None:
    """The counts at the end: the reviews read once more; once drained, nothing is in flight (an event that
    reached nothing is reported on its own line)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reviews.refresh(), 2.0)
    _count(progress, runner, reviews)
    if drained:
        progress.in_flight = 0


def _waiting_note(reviews: ReviewWatch, path: Path, runner: Any) -> str:
    """What a run that ends with events parked for review says about them: how many, where, how to decide them."""
    n = reviews.count
    agents = [w for w in reviews.waiting if w.event_ids]
    at = (f"at agent '{agents[0].agent}'" if len(agents) == 1
          else "(" + ", ".join(f"{len(w.event_ids)} at agent '{w.agent}'" for w in agents) + ")")
    waiting = f"{n} event{'s wait' if n != 1 else ' waits'} for review {at}"
    # A decision publishes the event on the review's outputs: agents after it take it up when they next run; a
    # target subject gets it at once.
    outputs = {a.output_subject for wf in runner.workflows for a in wf.agents if a.review_bucket}
    later = any(set(a.inputs.values()) & outputs for wf in runner.workflows for a in wf.agents)
    url = "URL" if runner.embedded else runner.url
    resume = (f"they resume on the next run (`kumeo run {path} --nats {url}`)" if later
              else "each goes to the workflow's target when it is decided")
    if runner.embedded:
        return (f"{waiting}, in the reviews bucket of this run's embedded nats-server, which is removed when the run "
                f"ends. To decide them, run on a nats-server of your own (--nats URL, see docs/ui.md) and decide "
                f"them with `kumeo dashboard {path} --nats URL` (or the review API); {resume}. "
                f"Or add --follow and decide them while the run goes on")
    return f"{waiting}; decide them with `kumeo dashboard {path} --nats {url}` (or the review API); {resume}"


async def _use_local_llm(plan: Any, stack: contextlib.AsyncExitStack, progress: Any) -> Any:
    try:
        from kumeo_iac.local import LocalLLM, use_local_llm
    except ModuleNotFoundError as exc:
        if exc.name != "kumeo_iac.local._llm":
            raise
        raise KumeoError("--llm local needs the embedded LLM server (kumeo_iac.local._llm), which is not in this "
                         "version of Kumeo yet; run without --llm, or point the LLM agents at a server") from None
    from kumeo_iac.compile import Plan

    if not any(a.kind == "LLM" for wf in plan.workflows for a in wf.agents):
        progress.note("--llm local: the workflow has no LLM agent; no LLM server started")
        return plan
    llm = await stack.enter_async_context(LocalLLM())
    progress.note(f"LLM agents use {llm.model} at {llm.base_url}")
    return Plan([use_local_llm(wf, llm.base_url, llm.model) for wf in plan.workflows])


async def _until(awaitable: Any, stop: asyncio.Event) -> Any:
    """Await ``awaitable`` unless ``stop`` is set first (then cancel it and return False)."""
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        result = task.result()
        return True if result is None else result
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    return False


async def _within(awaitable: Any, timeout: float) -> Any:
    """``awaitable``'s result, or -1 when it has not finished within ``timeout`` seconds (it is cancelled)."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        return -1


async def _tick_forever(tick: Any) -> None:
    while True:
        tick()
        await asyncio.sleep(0.5)


def _interrupted(received: list[int], progress: Any) -> int:
    sig = received[0] if received else signal.SIGINT
    progress.note(f"interrupted ({signal.Signals(sig).name}); stopping")
    return 128 + int(sig)


# -- kumeo send ---------------------------------------------------------------------------------------------------


def run_send(args: argparse.Namespace) -> int:
    """``kumeo send SUBJECT``: publish events with the Kumeo envelope (JetStream when a stream captures SUBJECT)."""
    payloads: list[tuple[str, Any]] = []
    problems: list[str] = []
    if args.data is not None:
        try:
            value = json.loads(args.data)
        except ValueError as exc:
            _err(f"kumeo send: error: --data is not valid JSON: {getattr(exc, 'msg', exc)} "
                 f"(column {getattr(exc, 'colno', '?')})")
            return 2
        items = value if isinstance(value, list) else [value]
        payloads = [(f"--data[{i}]" if isinstance(value, list) else "--data", v) for i, v in enumerate(items)]
    else:
        from kumeo_iac.local import read_events

        try:
            read = read_events(args.file)
        except KumeoError as exc:
            _err(str(exc))
            return 1
        problems = read.problems
        for problem in problems:
            _err(problem)
        payloads = [(f"{read.name}:{line}", payload) for line, payload in read.events]
    code = asyncio.run(_send(args.subject, payloads, args.nats, event_id=args.event_id))
    if problems:
        _err(f"kumeo send: error: {len(problems)} line(s) of {args.file} not sent (see above)")
        return code or 1
    return code


async def _send(subject: str, payloads: list[tuple[str, Any]], url: str, *, event_id: str | None) -> int:
    import nats.js.errors

    from kumeo_iac.runtime import envelope
    from kumeo_iac.runtime.io import source_headers

    nc = await _connect(url)
    if nc is None:
        return 1
    try:
        js = nc.jetstream()
        try:
            stream: str | None = await js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            stream = None
        except Exception:  # noqa: BLE001 - no JetStream on this server: core NATS it is
            stream = None
        if stream is None:
            _err(f"kumeo send: no stream captures {subject}; publishing on core NATS (only current subscribers "
                 "get it)")
        for index, (_, payload) in enumerate(payloads):
            eid = event_id if event_id and len(payloads) == 1 else (
                f"{event_id}-{index + 1}" if event_id else envelope.new_event_id())
            data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            headers = source_headers(eid, "kumeo-send")
            line: dict[str, Any] = {"subject": subject, "event_id": eid}
            if stream is not None:
                ack = await js.publish(subject, data, headers=headers, timeout=5.0)
                line.update(stream=ack.stream, seq=ack.seq)
                if ack.duplicate:
                    line["duplicate"] = True
            else:
                await nc.publish(subject, data, headers=headers)
            print(json.dumps(line), flush=True)
        await nc.flush(timeout=5)
        _err(f"kumeo send: sent {len(payloads)} event{'s' if len(payloads) != 1 else ''} to {subject}"
             f"{f' (stream {stream})' if stream else ''}")
        return 0
    except Exception as exc:  # noqa: BLE001 - the boundary of a NATS command: one line, no traceback
        _err(f"kumeo send: error: publishing to {subject} failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _connect(url: str) -> Any:
    from kumeo_iac.jetstream import connect

    try:
        return await connect(url, timeout_s=5.0, name="kumeo-cli")
    except KumeoError as exc:
        _err(f"kumeo: error: {exc}")
        return None


# -- kumeo tail ---------------------------------------------------------------------------------------------------


def run_tail(args: argparse.Namespace) -> int:
    """``kumeo tail SUBJECT...``: print each message on the subjects as ``{"subject", "event_id", "data"}``."""
    if args.count is not None and args.count <= 0:
        _err("kumeo tail: error: --count must be positive")
        return 2
    return asyncio.run(_tail(args.subjects, args.nats, args.count, args.timeout))


async def _tail(subjects: list[str], url: str, count: int | None, timeout: float | None) -> int:
    from kumeo_iac.local import output_of

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await _connect(url)
    if nc is None:
        return 1
    stdout = _Stdout()
    seen = 0

    async def on_message(msg: Any) -> None:
        nonlocal seen
        if count is not None and seen >= count:
            return
        seen += 1
        stdout.write(output_of(msg).to_json())
        if count is not None and seen >= count:
            stop.set()

    try:
        for subject in subjects:
            await nc.subscribe(subject, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await nc.flush(timeout=5)
        _err(f"kumeo tail: listening on {', '.join(subjects)}" + (f" for {count} message(s)" if count else ""))
        try:
            await asyncio.wait_for(stop.wait(), timeout)
        except TimeoutError:
            _err(f"kumeo tail: {seen} message(s) in {timeout:g} s")
            return 1 if count is not None else 0
        return 0
    except Exception as exc:  # noqa: BLE001 - a bad subject, a lost server: one line
        _err(f"kumeo tail: error: {type(exc).__name__}: {exc}")
        return 1
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
