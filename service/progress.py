"""Long model work as a stream: `{"progress": 0..1, "desc": ...}` after each slice, then `{"result": {...}}`.

The slices run under the model lane one at a time (`LANE.sliced`), so requests that arrive meanwhile go between
them, and closing the stream stops the work at the next slice. Under ZeroGPU each GPU call is a process of its
own, so there the work runs at once and the stream is its result alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from backends.lane import LANE, Progress
from runtime import spaces


def progress_items(slices: Iterable, unit: str, answer: Callable[[object], dict]) -> Iterator[dict]:
    """Each slice's Progress as a progress item counting `unit`, and the last item through `answer` as the result."""
    for item in LANE.sliced(slices):
        if isinstance(item, Progress):
            yield {"progress": item.fraction, "desc": f"{item.desc}: {item.done} of {item.total} {unit}"}
        else:
            yield {"result": answer(item)}


def stream(request: object, items: Callable[[object], Iterator[dict]], at_once: Callable[[object], dict]):
    """`items(request)`, or under ZeroGPU the one result of `at_once(request)`."""
    if spaces is not None:
        yield {"result": at_once(request)}
        return
    yield from items(request)
