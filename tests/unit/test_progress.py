"""`kumeo run`'s progress line: redrawn in place on a terminal, printed sparsely elsewhere, the summary's words."""

from __future__ import annotations

import io

from kumeo_iac.local._progress import Progress


def counts(progress: Progress, *, published: int, results: int, dead: int, flight: int,
           reviews: int | None = None) -> None:
    progress.published, progress.results, progress.dead_letters = published, results, dead
    progress.in_flight, progress.reviews = flight, reviews


def test_the_line_names_the_five_counts_and_leaves_reviews_out_without_a_review_agent():
    progress = Progress(io.StringIO(), live=False)
    counts(progress, published=10, results=7, dead=1, flight=0, reviews=2)
    assert progress.status() == "10 in, 7 routed, 1 dead letter, 2 waiting for review, 0 in flight"
    assert progress.counts() == "10 in, 7 routed, 1 dead letter, 2 waiting for review"
    counts(progress, published=1, results=0, dead=2, flight=1)
    assert progress.status() == "1 in, 0 routed, 2 dead letters, 1 in flight"


def test_on_a_terminal_one_line_is_redrawn_in_place_and_cleared_for_notes():
    stream = io.StringIO()
    progress = Progress(stream, live=True)
    counts(progress, published=3, results=0, dead=0, flight=3)
    progress.update()
    progress.update()  # unchanged: nothing drawn
    counts(progress, published=3, results=2, dead=1, flight=0)
    progress.update()
    progress.note("drained in 0.1 s: " + progress.counts())
    assert stream.getvalue() == ("\r\x1b[Kkumeo run: 3 in, 0 routed, 0 dead letters, 3 in flight"
                                 "\r\x1b[Kkumeo run: 3 in, 2 routed, 1 dead letter, 0 in flight"
                                 "\r\x1b[K"
                                 "kumeo run: drained in 0.1 s: 3 in, 2 routed, 1 dead letter\n")


def test_elsewhere_a_line_is_printed_when_the_counts_change_at_most_every_interval(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("kumeo_iac.local._progress.time.monotonic", lambda: now[0])
    stream = io.StringIO()
    progress = Progress(stream, live=False, every=2.0)
    counts(progress, published=5, results=0, dead=0, flight=5)
    progress.update()  # the first line
    counts(progress, published=5, results=1, dead=0, flight=4)
    now[0] += 0.5
    progress.update()  # changed, but too soon
    now[0] += 2.0
    progress.update()  # changed, and time: printed
    now[0] += 3.0
    progress.update()  # time, but unchanged
    progress.update(force=True)  # forced
    assert stream.getvalue().splitlines() == [
        "kumeo run: 5 in, 0 routed, 0 dead letters, 5 in flight",
        "kumeo run: 5 in, 1 routed, 0 dead letters, 4 in flight",
        "kumeo run: 5 in, 1 routed, 0 dead letters, 4 in flight",
    ]
