"""ModelManager: which versions of which models are loaded, kept in step with the disk.

TensorFlow Serving's pipeline (FileSystemStoragePathSource -> AspiredVersionsManager
with the AvailabilityPreservingPolicy -> ServableStateMonitor) in one class:

* every `poll_wait_seconds` each model's base path is listed; the version
  policy picks the aspired versions out of those on disk;
* new aspired versions are loaded first (highest first), then versions no
  longer aspired are unloaded, except that the newest serving one stays until
  an aspired version is available, so a failed or slow load never leaves a
  model with nothing to serve;
* a failed load is retried `max_num_load_retries` times, `load_retry_interval_seconds`
  apart, staying LOADING meanwhile (TF Serving's LoaderHarness); retrying stops early
  once the version is no longer aspired. Then the failure is recorded (state END
  plus the error, as GetModelStatus shows it) and the version is tried again only
  once its directory changes, so a half-copied directory loads when complete and
  a broken one is not retried on every poll;
* loaded versions are immutable `Servable`s held in a map that is replaced,
  never mutated: a request keeps the servable it resolved, so unloading never
  breaks a running request.

It knows nothing about gRPC: errors are `serving.errors` exceptions, and
listeners (health reporting) are told when a model's serving set changes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serving import config as model_config
from serving import storage
from serving.errors import (
    CancelledError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    ServingError,
    UnknownError,
    as_serving_error,
)
from serving.servable import Servable, ServableId

log = logging.getLogger(__name__)


class State(enum.IntEnum):
    """A version's life cycle; the numbers are get_model_status.proto's."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: State
    error: ServingError | None = None


Loader = Callable[[ServableId, Path], Servable]
Listener = Callable[[str], None]
StateListener = Callable[[ServableId, VersionStatus], None]


@dataclass
class _Model:
    config: model_config.ModelConfig
    serving: dict[int, Servable] = field(default_factory=dict)  # replaced, never mutated
    labels: dict[str, int] = field(default_factory=dict)
    aspired: set[int] = field(default_factory=set)
    failed: dict[int, storage.Fingerprint] = field(default_factory=dict)
    last_poll_problem: str = ""


class ModelManager:
    """Loads, serves and unloads model versions according to a ModelServerConfig."""

    def __init__(
        self,
        loader: Loader,
        poll_wait_seconds: float = 1.0,
        allow_version_labels_for_unavailable_models: bool = False,
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
    ) -> None:
        self._loader = loader
        self._poll_wait = poll_wait_seconds
        self._max_load_retries = max(max_num_load_retries, 0)
        self._retry_interval = max(load_retry_interval_seconds, 0.0)
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._models: dict[str, _Model] = {}
        # Like TF Serving's ServableStateMonitor, statuses outlive unloads and
        # removed models: GetModelStatus still reports them as END.
        self._statuses: dict[str, dict[int, VersionStatus]] = {}
        self._listeners: list[Listener] = []
        self._state_listeners: list[StateListener] = []
        self._lock = threading.Lock()  # guards the maps above; held briefly
        self._sync_lock = threading.RLock()  # one poll or config change at a time
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._configured = False

    # -- lifecycle -------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(model_name)` whenever that model's set of loaded versions changes."""
        self._listeners.append(listener)

    def add_state_listener(self, listener: StateListener) -> None:
        """Call `listener(servable_id, status)` on every version state change (metrics)."""
        self._state_listeners.append(listener)

    def start(self, config: model_config.ModelServerConfig) -> None:
        """Load `config` and wait until every model serves, then poll in the background.

        TensorFlow Serving opens its port only after this initial load, and so
        do we: a model whose latest version fails to load is a startup error;
        a missing or empty base path is waited for (polling, logging why).
        """
        self.load_config(config)
        if self._poll_wait > 0:
            self._thread = threading.Thread(
                target=self._poll_forever, name="model-manager-poll", daemon=True
            )
            self._thread.start()

    def request_stop(self) -> None:
        """Make a pending startup wait or poll give up; safe from a signal handler."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop polling and unload everything. In-flight requests finish on their servable."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join()
        with self._sync_lock:
            for name in list(self._models):
                self._unload_versions(self._models[name], sorted(self._models[name].serving))

    # -- configuration ----------------------------------------------------------

    def load_config(
        self, config: model_config.ModelServerConfig, timeout: float | None = None
    ) -> None:
        """Serve exactly the models in `config` (startup, reloads, HandleReloadConfigRequest).

        Blocks until models new in `config` are available, like ServerCore::ReloadConfig.
        """
        model_config.validate(config)
        if config.WhichOneof("config") is None:
            log.info("Taking no action for empty config.")
            return
        entries = {entry.name: entry for entry in config.model_config_list.config}
        with self._sync_lock:
            first = not self._configured
            if not first:
                for entry in entries.values():
                    self._check_labels(entry)
            added = [name for name in entries if name not in self._models]
            removed = [name for name in self._models if name not in entries]
            with self._lock:
                for name, entry in entries.items():
                    model = self._models.setdefault(name, _Model(entry))
                    model.config = entry
                    if not first:
                        model.labels = dict(entry.version_labels)
            for name in removed:
                log.info("Removing model %s: no longer in the config", name)
                self._unload_versions(self._models[name], sorted(self._models[name].serving))
                with self._lock:
                    del self._models[name]
            self._configured = True
            if self._poll_wait >= 0:  # negative: never look at the disk (as TF Serving)
                for name in entries:
                    self._sync(name)
        self._await_available(added, timeout)
        if first:
            # TF Serving checks labels before anything loaded, so any label fails
            # at startup without --allow_version_labels_for_unavailable_models;
            # we check them once the initial load is done.
            with self._sync_lock:
                for entry in entries.values():
                    self._check_labels(entry)
                with self._lock:
                    for name, entry in entries.items():
                        self._models[name].labels = dict(entry.version_labels)
        self._notify(list(entries) + removed)

    def _check_labels(self, entry: model_config.ModelConfig) -> None:
        with self._lock:
            model = self._models.get(entry.name)
            available = set(model.serving) if model else set()
            current = dict(model.labels) if model else {}
        model_config.check_version_labels(entry, available, current, self._allow_unavailable_labels)

    def _await_available(self, names: list[str], timeout: float | None) -> None:
        """Wait until the latest aspired version of each model is AVAILABLE (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            waiting, failures = [], []
            for name in names:
                readiness = self._readiness(name)
                if isinstance(readiness, VersionStatus):
                    failures.append((name, readiness))
                elif not readiness:
                    waiting.append(name)
            # A stop wins over a failure: the stop may be what cut a load's retries short.
            if self._stopping.is_set():
                raise CancelledError("model server is stopping")
            if failures:
                details = "".join(
                    f"{{{ServableId(name, status.version)} due to error: {status.error}}}, "
                    for name, status in failures
                )
                raise UnknownError(
                    f"{len(failures)} model(s) did not become available: {{{details}}}"
                )
            if not waiting:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceededError(
                    f"models did not become available in time: {', '.join(waiting)}"
                )
            # Like TF Serving with --file_system_poll_wait_seconds<=0, nothing
            # new is looked for then; the wait only ends on stop.
            wait = self._poll_wait if self._poll_wait > 0 else 1.0
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            if self._stopping.wait(wait):
                continue
            if self._poll_wait > 0:
                with self._sync_lock:
                    for name in waiting:
                        self._sync(name)

    def _readiness(self, name: str) -> bool | VersionStatus:
        """True if the latest aspired version serves, its failed status, or False (wait)."""
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.aspired:
                return False
            latest = max(model.aspired)
            if latest in model.serving:
                return True
            status = self._statuses.get(name, {}).get(latest)
        if status is not None and status.state == State.END and status.error is not None:
            return status
        return False

    # -- requests ----------------------------------------------------------------

    def get_servable(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Servable:
        """The servable a request names: latest available, a version, or a label."""
        if not name:
            raise InvalidArgumentError("ModelSpec has no name specified.")
        with self._lock:
            model = self._models.get(name)
            serving = model.serving if model else {}
            labels = model.labels if model else {}
        if label is not None:
            if label not in labels:
                raise InvalidArgumentError(f"Unrecognized servable version label: {label}")
            version = labels[label]
        if version is None:
            if not serving:
                raise NotFoundError(f"Servable not found for request: Latest({name})")
            return serving[max(serving)]
        if version not in serving:
            raise NotFoundError(f"Servable not found for request: Specific({name}, {version})")
        return serving[version]

    def model_status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Version statuses, newest first, with TF Serving's NOT_FOUND messages."""
        with self._lock:
            statuses = dict(self._statuses.get(name, {}))
        if version is not None:
            if version not in statuses:
                raise NotFoundError(f"Could not find version {version} of model {name}")
            return [statuses[version]]
        if not statuses:
            raise NotFoundError(f"Could not find any versions of model {name}")
        return [statuses[v] for v in sorted(statuses, reverse=True)]

    def known_versions(self, name: str) -> set[int] | None:
        """Versions of `name` the server has a status for; None if it never knew `name`."""
        with self._lock:
            if name not in self._models and name not in self._statuses:
                return None
            return set(self._statuses.get(name, {}))

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def serving_versions(self, name: str) -> list[int]:
        with self._lock:
            model = self._models.get(name)
            return sorted(model.serving) if model else []

    # -- polling -------------------------------------------------------------------

    def poll(self) -> None:
        """Bring every model in step with its base path once."""
        with self._sync_lock:
            for name in list(self._models):
                self._sync(name)

    def _poll_forever(self) -> None:
        while not self._stopping.wait(self._poll_wait):
            try:
                self.poll()
            except Exception:  # a poll must never kill the thread
                log.exception("model poll failed")

    def _sync(self, name: str) -> None:
        """Load new aspired versions of `name`, then unload those no longer aspired."""
        with self._lock:
            model = self._models.get(name)
        if model is None or self._stopping.is_set():
            return
        entry = model.config
        try:
            on_disk = storage.list_versions(name, entry.base_path)
        except ServingError as err:
            # Keep serving what is loaded; the base path may be back next poll.
            self._report_once(model, f"File system access error: {err.message}")
            return
        aspired = model_config.aspired_versions(entry.model_version_policy, on_disk)
        if not on_disk:
            self._report_once(
                model,
                f"No versions of servable {name} found under base path {entry.base_path}. "
                "Did you forget to name your leaf directory as a number (eg. '/1/')?",
            )
        elif missing := set(entry.model_version_policy.specific.versions) - set(on_disk):
            self._report_once(
                model,
                f"Versions {sorted(missing)} of servable {name}, requested by its 'specific' "
                "version policy, were not found in the file system",
            )
        else:
            model.last_poll_problem = ""
        with self._lock:
            model.aspired = aspired
        for version in sorted(aspired, reverse=True):
            if version in model.serving or self._stopping.is_set():
                continue
            path = on_disk[version]
            fingerprint = storage.fingerprint(path)
            if model.failed.get(version) == fingerprint:
                continue  # failed before and unchanged since: retrying cannot help
            self._load(model, version, path, fingerprint)
        retired = sorted(v for v in model.serving if v not in aspired)
        if aspired and not aspired & set(model.serving):
            retired = retired[:-1]  # keep the newest until a replacement serves
        self._unload_versions(model, retired)

    def _report_once(self, model: _Model, problem: str) -> None:
        if problem != model.last_poll_problem:
            log.warning("%s", problem)
            model.last_poll_problem = problem

    def _load(
        self, model: _Model, version: int, path: Path, fingerprint: storage.Fingerprint
    ) -> None:
        servable_id = ServableId(model.config.name, version)
        self._set_status(servable_id, State.LOADING)
        log.info("Loading servable version %s from %s", servable_id, path)
        started = time.monotonic()
        retries = 0
        while True:
            try:
                servable = self._loader(servable_id, path)
                break
            except Exception as err:
                error = as_serving_error(err)
            if retries == self._max_load_retries or not self._retry_wanted(
                servable_id, error, retries + 1
            ):
                model.failed[version] = fingerprint
                self._set_status(servable_id, State.END, error)
                log.error(
                    "Loading servable version %s failed: %s (retried when %s changes)",
                    servable_id,
                    error,
                    path,
                )
                return
            retries += 1
            fingerprint = storage.fingerprint(path)  # what the next attempt sees
            log.info("Retrying of Loading servable: %s retry: %d", servable_id, retries)
        model.failed.pop(version, None)
        with self._lock:
            model.serving = {**model.serving, version: servable}
        self._set_status(servable_id, State.AVAILABLE)
        log.info(
            "Successfully loaded servable version %s in %.2fs",
            servable_id,
            time.monotonic() - started,
        )
        self._notify([model.config.name])

    def _retry_wanted(self, servable_id: ServableId, error: ServingError, retry: int) -> bool:
        """Wait for retry number `retry`; False if the server stops or the version stops
        being aspired meanwhile (TF Serving cancels the retries of an unaspired version)."""
        log.warning(
            "Loading servable version %s failed: %s; retry %d of %d in %gs",
            servable_id,
            error,
            retry,
            self._max_load_retries,
            self._retry_interval,
        )
        if self._stopping.wait(self._retry_interval):
            return False
        with self._lock:
            model = self._models.get(servable_id.name)
        if model is None:
            return False
        try:
            on_disk = storage.list_versions(servable_id.name, model.config.base_path)
        except ServingError:
            return True  # a file system hiccup is what retries are for
        aspired = model_config.aspired_versions(model.config.model_version_policy, on_disk)
        if servable_id.version not in aspired:
            log.info("Load cancelled for servable: %s (no longer aspired)", servable_id)
            return False
        return True

    def _unload_versions(self, model: _Model, versions: list[int]) -> None:
        for version in versions:
            servable_id = ServableId(model.config.name, version)
            self._set_status(servable_id, State.UNLOADING)
            with self._lock:
                servable = model.serving.get(version)
                model.serving = {v: s for v, s in model.serving.items() if v != version}
            if servable is not None:
                servable.close()  # no new request finds it; finish the queued ones
            servable = None  # drop ours before END: a listener may free its memory
            self._set_status(servable_id, State.END)
            log.info("Unloaded servable version %s", servable_id)
        if versions:
            self._notify([model.config.name])

    def _set_status(
        self, servable_id: ServableId, state: State, error: ServingError | None = None
    ) -> None:
        status = VersionStatus(servable_id.version, state, error)
        with self._lock:
            self._statuses.setdefault(servable_id.name, {})[servable_id.version] = status
        for listener in self._state_listeners:
            try:
                listener(servable_id, status)
            except Exception:
                log.exception("state listener failed for %s", servable_id)

    def _notify(self, names: list[str]) -> None:
        for name in names:
            for listener in self._listeners:
                try:
                    listener(name)
                except Exception:
                    log.exception("model listener failed for %s", name)
