"""Dynamic batching (--enable_batching): concurrent calls of one signature run as one.

TensorFlow Serving's design (shared_batch_scheduler.h, batching_session.cc): one
BatchScheduler per server owns `num_batch_threads` threads, shared round-robin by
the queues; every batchable signature of every loaded version has its own queue.
A request joins its queue's open batch; a batch closes when it holds
max_batch_size rows, and a free thread takes it once it is closed or its first
request has waited batch_timeout_micros (default 0: at once, so batches only grow
while every thread is busy; a request whose batch is due at once runs it on its
own thread in an idle batch thread's stead). The requests' inputs are concatenated along
dimension 0, padded up to the next allowed batch size by repeating a row, run as
ONE TensorFlow call, and the outputs are sliced back to each request; an error
goes to every request of the batch. Unloading a version drains its queues first.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serving import batching_config
from serving.batching_config import BatchingOptions
from serving.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    UnavailableError,
    as_serving_error,
)
from serving.servable import Servable, SignatureDef

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


class BatchSizeObserver(Protocol):
    def observe_batch_size(self, model: str, signature: str, size: int) -> None: ...


# -- tensors ------------------------------------------------------------------------------


def is_batchable(signature: SignatureDef) -> bool:
    """Whether every input and output is batch-major (dimension 0 of unknown size, as
    exported batch dimensions are). Other signatures, e.g. with scalars, run unbatched."""
    if not signature.inputs or signature.defaults:
        return False
    infos = [*signature.inputs.values(), *signature.outputs.values()]
    return all(
        info.WhichOneof("encoding") == "name"
        and (
            info.tensor_shape.unknown_rank
            or (len(info.tensor_shape.dim) > 0 and info.tensor_shape.dim[0].size == -1)
        )
        for info in infos
    )


def batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    """Rows in one request (batching_util.h's ComputeTensorBatchSize, same messages)."""
    sizes = set()
    for array in inputs.values():
        if array.ndim == 0:
            raise InvalidArgumentError(
                "Batching Run() input tensors must have at least one dimension"
            )
        sizes.add(array.shape[0])
    if len(sizes) > 1:
        raise InvalidArgumentError(
            "Batching Run() input tensors must have equal 0th-dimension size"
        )
    return sizes.pop()


def shape_key(inputs: Mapping[str, np.ndarray], pad_variable_length: bool) -> Hashable:
    """Requests with equal keys can share a batch: equal non-batch dimensions, or with
    pad_variable_length_inputs equal ranks (the shorter ones get padded)."""
    if pad_variable_length:
        return tuple(sorted((alias, array.ndim) for alias, array in inputs.items()))
    return tuple(sorted((alias, array.shape[1:]) for alias, array in inputs.items()))


def padded_size(rows: int, allowed_batch_sizes: Sequence[int]) -> int:
    """The first allowed batch size that holds `rows` (RoundToLowestAllowedBatchSize)."""
    return next((size for size in allowed_batch_sizes if size >= rows), rows)


def merge_inputs(
    requests: Sequence[Mapping[str, Any]], padding_rows: int, pad_variable_length: bool
) -> Arrays:
    """Concatenate along dimension 0, then add `padding_rows` copies of the last request's
    first row (BatchingSession::MergeInputTensors)."""
    merged = {}
    for alias in requests[0]:
        arrays = [np.asarray(request[alias]) for request in requests]
        if pad_variable_length:
            arrays = _pad_to_common_shape(arrays)
        if padding_rows:
            arrays.append(np.repeat(arrays[-1][:1], padding_rows, axis=0))
        merged[alias] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return merged


def _pad_to_common_shape(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Pad every non-batch dimension at its end to the largest size in the batch, with the
    array's own first element (batching_util.cc's AddPadding)."""
    target = np.max([array.shape for array in arrays], axis=0)
    padded = []
    for array in arrays:
        ends = zip(array.shape[1:], target[1:], strict=True)
        widths = [(0, 0), *((0, int(t - s)) for s, t in ends)]
        if any(after for _, after in widths):
            array = np.pad(array, widths, constant_values=array.flat[0])
        padded.append(array)
    return padded


def check_outputs(outputs: Mapping[str, np.ndarray], rows: int) -> None:
    """Every output must have one row per input row (BatchingSession::SplitOutputTensors)."""
    for array in outputs.values():
        if array.ndim == 0:
            raise FailedPreconditionError("Batched output tensor has 0 dimensions")
        if array.shape[0] != rows:
            raise FailedPreconditionError(
                "Batched output tensor's 0th dimension does not equal the sum of the 0th "
                "dimension sizes of the input tensors"
            )


# -- queues and threads -------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
    """The rows of one request (or one piece of a split request) awaiting their outputs."""

    inputs: Mapping[str, Any]  # arrays (or tensors) as the servable checked them, or pieces
    size: int
    shape_key: Hashable
    future: Future = field(default_factory=Future)


@dataclass(eq=False)
class _Batch:
    tasks: list[_Task] = field(default_factory=list)
    size: int = 0

    def add(self, task: _Task) -> None:
        self.tasks.append(task)
        self.size += task.size


class BatchQueue:
    """The tasks of one signature, grouped into batches (SharedBatchScheduler's Queue).

    The last batch of the deque is the open one; the others are closed and due.
    All state is guarded by the scheduler's lock.
    """

    def __init__(
        self,
        scheduler: BatchScheduler,
        options: BatchingOptions,
        process: Callable[[list[_Task]], None],
    ) -> None:
        self.options = options
        self._scheduler = scheduler
        self._lock = scheduler.lock
        self._work = scheduler.work
        self._drained = scheduler.drained
        self._process = process
        self._batches: collections.deque[_Batch] = collections.deque([_Batch()])
        self._open_since = 0.0
        self._in_flight = 0
        self._closed = False

    def schedule(self, inputs: Mapping[str, Any], size: int, key: Hashable) -> list[Future] | None:
        """Enqueue one request's rows: the futures of its pieces (one unless split), or
        None once the queue is closed."""
        with self._lock:
            if self._closed:
                return None
            pieces = self._admit(_Task(inputs, size, key))
            now = time.monotonic()
            opened = [self._add(piece, now) for piece in pieces]
            # A due batch holding this request, and an idle batch thread: run the batch
            # here instead, in that thread's slot; handing it over costs two thread wakeups.
            own = len(pieces) == 1 and len(self._batches) == 1
            batch = self._scheduler.claim_slot(self, now) if own else None
            # Wake a batch thread only if there is news for it: a batch to run now, or a new
            # open batch to time. A request that joins an open batch which is not due yet
            # changes neither; waking a thread for it costs more than the rest of its way.
            if batch is None and (any(opened) or len(self._batches) > 1 or self._due(now)):
                self._work.notify(len(pieces))
        if batch is not None:
            try:
                self.run(batch)
            finally:
                self._scheduler.release_slot()
        return [piece.future for piece in pieces]

    def _admit(self, task: _Task) -> list[_Task]:
        """Reject what does not fit, with Queue::ValidateBatchTaskQueueCapacity's messages;
        split a large task when enable_large_batch_splitting is on."""
        options = self.options
        if task.size > options.max_batch_size:
            raise InvalidArgumentError(
                f"Task size {task.size} is larger than maximum input batch size "
                f"{options.max_batch_size}"
            )
        open_batch = self._batches[-1]
        room = self._room(open_batch, task)
        if options.enable_large_batch_splitting:
            free_batches = options.max_enqueued_batches - len(self._batches)
            capacity = free_batches * options.max_execution_batch_size + room
            if task.size > capacity:
                raise UnavailableError(
                    "The batch scheduling queue to which this task was submitted is full; "
                    f"task size is {task.size} but scheduling capacity is only {capacity} "
                    f"(num_enqueued_batches={len(self._batches)}, "
                    f"max_enqueued_batches={options.max_enqueued_batches}, "
                    f"open_batch_size={open_batch.size}, "
                    f"max_execution_batch_size={options.max_execution_batch_size})"
                )
            return _split(task, room, options.max_execution_batch_size)
        if task.size > room and len(self._batches) >= options.max_enqueued_batches:
            raise UnavailableError(
                "The batch scheduling queue to which this task was submitted is full; "
                f"currently {len(self._batches)} batches enqueued and max_enqueued_batches "
                f"is {options.max_enqueued_batches}"
            )
        return [task]

    def _room(self, batch: _Batch, task: _Task) -> int:
        """Rows `batch` can still take from `task`: none if their shapes cannot be merged."""
        if batch.tasks and batch.tasks[0].shape_key != task.shape_key:
            return 0
        return self.options.max_execution_batch_size - batch.size

    def _add(self, task: _Task, now: float) -> bool:
        """Put `task` in the open batch, or a new one; True if it opened a batch."""
        open_batch = self._batches[-1]
        if task.size > self._room(open_batch, task):
            open_batch = _Batch()
            self._batches.append(open_batch)
        opened = not open_batch.tasks
        if opened:
            self._open_since = now
        open_batch.add(task)
        return opened

    def _due(self, now: float) -> bool:
        """Whether the open batch may run now (if it is the only one): closed by size or
        by its timeout, or the queue is closing."""
        return (
            self._closed
            or self._batches[-1].size >= self.options.max_execution_batch_size
            or now >= self._open_since + self.options.batch_timeout_seconds
        )

    def take_batch(self, now: float) -> _Batch | None:
        """A due batch for a free thread, or None (Queue::ScheduleBatch)."""
        if len(self._batches) > 1:
            batch = self._batches.popleft()
        else:
            batch = self._batches[0]
            if not batch.tasks or not self._due(now):
                return None
            self._batches[0] = _Batch()
        self._in_flight += 1
        return batch

    def due_at(self) -> float | None:
        """When the open batch times out, if it is the only one and holds tasks."""
        if len(self._batches) == 1 and self._batches[0].tasks:
            return self._open_since + self.options.batch_timeout_seconds
        return None

    def run(self, batch: _Batch) -> None:
        """Process a taken batch on this thread: a batch thread, or a request's in its slot."""
        try:
            self._process(batch.tasks)
        except Exception:  # _process resolves every future itself; never lose a thread
            log.exception("batch processing failed")
        finally:
            with self._lock:
                self._in_flight -= 1
                if self._closed and self._is_empty():
                    self._drained.notify_all()

    def close(self) -> None:
        """Refuse new tasks and wait until the queued ones ran (CloseAndWaitUntilEmpty)."""
        with self._lock:
            self._closed = True
            self._work.notify_all()  # the open batch is due now
            self._drained.wait_for(self._is_empty)
            self._scheduler.remove(self)

    def _is_empty(self) -> bool:
        return self._in_flight == 0 and len(self._batches) == 1 and not self._batches[0].tasks


def _split(task: _Task, room: int, limit: int) -> list[_Task]:
    """Fill the open batch's `room`, then pieces of at most `limit` rows (SplitInputTask)."""
    if task.size <= room:
        return [task]
    sizes = [room] if room > 0 else []
    rest = task.size - room
    while rest > 0:
        sizes.append(min(rest, limit))
        rest -= limit
    pieces, start = [], 0
    for size in sizes:
        rows = {
            alias: np.asarray(value)[start : start + size] for alias, value in task.inputs.items()
        }
        pieces.append(_Task(rows, size, task.shape_key))
        start += size
    return pieces


class BatchScheduler:
    """The batch threads, shared by every queue and taking due batches round-robin."""

    def __init__(self, num_threads: int, thread_pool_name: str = "batch_threads") -> None:
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # a batch may be due, or a slot free
        self.drained = threading.Condition(self.lock)  # a closed queue may be empty
        self._queues: list[BatchQueue] = []
        self._next = 0
        # Batches may run at once: num_batch_threads, on batch threads or on a request
        # thread that claimed an idle batch thread's slot (BatchQueue.schedule).
        self._free_slots = num_threads
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_pool_name}_{i}", daemon=True)
            for i in range(num_threads)
        ]
        for thread in self._threads:
            thread.start()

    def add_queue(
        self, options: BatchingOptions, process: Callable[[list[_Task]], None]
    ) -> BatchQueue:
        queue = BatchQueue(self, options, process)
        with self.lock:
            self._queues.append(queue)
        return queue

    def remove(self, queue: BatchQueue) -> None:
        """Forget a closed, empty queue; the caller holds the lock."""
        if queue in self._queues:
            index = self._queues.index(queue)
            del self._queues[index]
            if index < self._next:
                self._next -= 1

    def stop(self) -> None:
        """Drain every queue, then end the threads."""
        with self.lock:
            queues = list(self._queues)
        for queue in queues:
            queue.close()
        with self.lock:
            self._stopping = True
            self.work.notify_all()
        for thread in self._threads:
            thread.join()

    def claim_slot(self, queue: BatchQueue, now: float) -> _Batch | None:
        """`queue`'s due batch and a free slot to run it in, if both exist; the caller
        holds the lock and calls release_slot() after running the batch."""
        if self._free_slots == 0:
            return None
        batch = queue.take_batch(now)
        if batch is not None:
            self._free_slots -= 1
        return batch

    def release_slot(self) -> None:
        with self.lock:
            self._free_slots += 1
            self.work.notify()

    def _work(self) -> None:
        while True:
            with self.lock:
                while (found := self._next_batch(time.monotonic())) is None:
                    if self._stopping:
                        return
                    self.work.wait(self._seconds_to_next_due())
                self._free_slots -= 1
            queue, batch = found
            queue.run(batch)
            self.release_slot()

    def _next_batch(self, now: float) -> tuple[BatchQueue, _Batch] | None:
        if self._free_slots == 0:
            return None
        for _ in range(len(self._queues)):
            self._next %= len(self._queues)
            queue = self._queues[self._next]
            self._next += 1
            batch = queue.take_batch(now)
            if batch is not None:
                return queue, batch
        return None

    def _seconds_to_next_due(self) -> float | None:
        if self._free_slots == 0:
            return None  # release_slot() notifies
        due = [at for queue in self._queues if (at := queue.due_at()) is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None


# -- servables ----------------------------------------------------------------------------


class ServableBatcher:
    """The queues of one loaded version, one per batchable signature; runs its calls."""

    def __init__(
        self,
        servable: Servable,
        scheduler: BatchScheduler,
        options: BatchingOptions,
        metrics: BatchSizeObserver | None = None,
    ) -> None:
        self._call = servable.call_signature
        self._model = servable.id.name
        self._options = options
        self._metrics = metrics
        self._queues = {
            key: scheduler.add_queue(options, functools.partial(self._run_batch, key))
            for key, signature in servable.signature_defs.items()
            if is_batchable(signature)
        }

    @property
    def signatures(self) -> list[str]:
        return sorted(self._queues)

    def run(self, signature_name: str, feed: Mapping[str, Any]) -> Mapping[str, Any]:
        """One request's outputs, computed in a batch when its signature is batchable."""
        queue = self._queues.get(signature_name)
        if queue is None:
            return self._call(signature_name, feed)
        arrays = {alias: np.asarray(value) for alias, value in feed.items()}
        size = batch_size(arrays)
        if size == 0 or any(array.size == 0 for array in arrays.values()):
            return self._call(signature_name, feed)  # nothing to merge or to pad with
        futures = queue.schedule(
            feed, size, shape_key(arrays, self._options.pad_variable_length_inputs)
        )
        if futures is None:  # unloaded since the request found this version
            return self._call(signature_name, feed)
        parts = [future.result() for future in futures]
        if len(parts) == 1:
            return parts[0]
        return {alias: np.concatenate([part[alias] for part in parts]) for alias in parts[0]}

    def close(self) -> None:
        """Drain the queues; later calls run unbatched."""
        for queue in self._queues.values():
            queue.close()

    def _run_batch(self, signature_name: str, tasks: list[_Task]) -> None:
        rows = sum(task.size for task in tasks)
        size = padded_size(rows, self._options.allowed_batch_sizes)
        try:
            if len(tasks) == 1 and size == rows:
                inputs = tasks[0].inputs  # nothing to merge: no copy
            else:
                inputs = merge_inputs(
                    [task.inputs for task in tasks],
                    size - rows,
                    self._options.pad_variable_length_inputs,
                )
            if self._metrics is not None:
                self._metrics.observe_batch_size(self._model, signature_name, size)
            results = self._call(signature_name, inputs)
            outputs = {alias: np.asarray(value) for alias, value in results.items()}
            check_outputs(outputs, size)
        except Exception as err:
            error = as_serving_error(err)
            for task in tasks:
                task.future.set_exception(type(error)(error.message))
            return
        start = 0
        for task in tasks:
            end = start + task.size
            task.future.set_result({alias: array[start:end] for alias, array in outputs.items()})
            start = end


class Batching:
    """A server's batching: the shared threads, and a batcher for each version it loads."""

    def __init__(
        self,
        options: BatchingOptions,
        per_model: bool = False,
        metrics: BatchSizeObserver | None = None,
    ) -> None:
        self.options = options
        self._per_model = per_model
        self._metrics = metrics
        self._scheduler = BatchScheduler(options.num_batch_threads, options.thread_pool_name)

    @classmethod
    def from_flags(
        cls,
        enable_batching: bool,
        parameters_file: str,
        per_model: bool,
        metrics: BatchSizeObserver | None = None,
    ) -> Batching | None:
        """--enable_batching, --batching_parameters_file and
        --enable_per_model_batching_parameters; None when batching is off."""
        options = batching_config.server_options(enable_batching, parameters_file)
        return None if options is None else cls(options, per_model, metrics)

    def attach(self, servable: Servable) -> None:
        """Route `servable`'s batchable signatures through queues; before it serves."""
        options = batching_config.model_options(servable.path, self.options, self._per_model)
        if options is None:
            return
        batcher = ServableBatcher(servable, self._scheduler, options, self._metrics)
        servable.route_calls(batcher.run, batcher.close)
        log.info("Batching servable version %s: signatures %s", servable.id, batcher.signatures)

    def stop(self) -> None:
        """Drain every queue and end the batch threads (after the versions unloaded)."""
        self._scheduler.stop()
