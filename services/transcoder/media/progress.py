"""How far a media job got, for the worker to report: the fraction of the job done, by
the time of the last video packet fed (or copied) against the stretch of the source's
timeline the job covers.

Decisions:
- `Progress` is called with fractions in [0, 1] that never go back: B-frames make packet
  times jump back and forth, and a job may start over (the transcode after a remux the
  muxer refused or whose packets did not all decode), so only a new highest fraction is
  passed on.
- 1.0 means the output is complete: while the packets are read the fraction stays below
  it, and the function that writes the output (`remux`, `transcode`, `cut`) reports 1.0
  once, when it succeeded. The functions around them (`make_playback`, `prepare_media`,
  `cut_clip`) only pass the callback down: their last step is that call, so its 1.0 is
  theirs. A failed job never reports 1.0.
- Video packets only: the audio follows the video closely and would only call more often.
  Calls come once per video packet; throttling them is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable

#: Told the fraction of the job done, in [0, 1].
Progress = Callable[[float], None]


def rising(progress: Progress) -> Progress:
    """`progress`, told only of fractions above the highest one so far."""
    highest = 0.0

    def report(fraction: float) -> None:
        nonlocal highest
        if fraction > highest:
            highest = fraction
            progress(fraction)

    return report


class Meter:
    """Reports a job covering `[start, end]` of the source's timeline (seconds) as the
    fraction of it behind the times it is given; nothing when `progress` is None."""

    def __init__(self, progress: Progress | None, start: float, end: float) -> None:
        self._report = None if progress is None else rising(progress)
        self._start = start
        self._length = end - start

    def at(self, seconds: float) -> None:
        """The job got to `seconds`; clamped to [0, 1), since only `done` says 1.0."""
        if self._report is not None and self._length > 0:
            fraction = max(0.0, (seconds - self._start) / self._length)
            if fraction < 1.0:
                self._report(fraction)

    def done(self) -> None:
        """The output is complete."""
        if self._report is not None:
            self._report(1.0)
