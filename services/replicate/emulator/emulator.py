"""The emulator's state and behaviour, independent of HTTP.

`Emulator` holds the predictions, files and uploads, plays each prediction's
timeline (starting -> processing -> succeeded | failed | canceled, with growing logs
and webhooks along the way), and owns every background task: one per prediction
in flight, the webhook workers, and a sweeper that deletes expired outputs. Start it
with `start()` (or `async with emulator.running():`) inside the event loop that
serves it, and `aclose()` it to cancel everything.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from PIL import Image

from services.outbound import AddressPolicy, Fetcher, FetchLimits, parse_allowed_hosts
from services.replicate.emulator.config import EmulatorConfig
from services.replicate.emulator.deliveries import Delivery, WebhookDispatcher
from services.replicate.emulator.faults import FaultDice
from services.replicate.emulator.inputs import InputFetchError, fetch_input
from services.replicate.emulator.jobs import Job, OutputFile, plan_job, progress_line
from services.replicate.emulator.media import MediaError, decode_image
from services.replicate.emulator.pages import PredictionPage, decode_cursor, encode_cursor
from services.replicate.emulator.predictions import (
    WEBHOOK_EVENTS,
    PredictionRecord,
    new_prediction_id,
    utc_now,
)
from services.replicate.emulator.ratelimit import SlidingWindowLimiter
from services.replicate.emulator.specs import InvalidField, ModelSpec
from services.replicate.emulator.store import FileStore
from services.replicate.emulator.uploads import Uploads
from services.replicate.emulator.validation import validate_input

logger = logging.getLogger("studio.emulator")

# The share of `latency_ms` a prediction spends `starting` (queued, booting) before
# it is `processing`.
STARTING_SHARE: Final = 0.2
SWEEP_SECONDS: Final = 0.25
FAILURE_MESSAGE: Final = (
    "Prediction failed: the model raised an error while running (emulated fault injection)"
)


class InputInvalid(Exception):
    """The input did not validate; `problems` become the 422's `invalid_fields`."""

    def __init__(self, problems: list[InvalidField]) -> None:
        super().__init__("; ".join(problem.description for problem in problems))
        self.problems = problems


class Emulator:
    """Replicate's behaviour, in memory: predictions, files, webhooks, limits and faults.

    `config` is read at each decision, so changing it on a running emulator takes
    effect at once (for faults) or from the next prediction (for latency).
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.dice = FaultDice(self.config.seed)
        self.limiter = SlidingWindowLimiter()
        self.files = FileStore()
        self.predictions: dict[str, PredictionRecord] = {}
        self.uploads = Uploads(self.files)
        # API requests received, by "METHOD route" (route with its {placeholders}),
        # counted before any check, so a 503 or a 429 counts too.
        self.requests: collections.Counter[str] = collections.Counter()
        # Succeeded predictions whose outputs have not expired yet, for the sweeper.
        self._expiring: dict[str, PredictionRecord] = {}
        self._seq = 0
        self._client: httpx.AsyncClient | None = None
        self._fetcher: Fetcher | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._webhooks: WebhookDispatcher | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether `start()` ran and `aclose()` has not since."""
        return self._client is not None

    def start(self) -> None:
        """Open the HTTP client, worker threads and the sweeper, in the running loop.

        Idempotent. Request handlers call it too, so an emulator mounted in an app
        whose lifespan does not start it still works (but then nothing stops it).
        """
        if self.started:
            return
        # Inputs and webhooks go wherever the caller says; never through a proxy
        # from the environment, which would reroute local receivers.
        self._client = httpx.AsyncClient(
            trust_env=False, headers={"user-agent": "replicate-emulator"}
        )
        # Inputs come from the public internet only, as Replicate's do.
        config = self.config
        self._fetcher = Fetcher(
            policy=AddressPolicy(allowed_hosts=parse_allowed_hosts(config.input_allowed_hosts)),
            limits=FetchLimits(
                max_image_bytes=config.max_input_bytes,
                max_video_bytes=config.max_input_bytes,
                read_timeout=config.input_fetch_timeout_seconds,
                total_timeout=config.input_fetch_timeout_seconds,
            ),
            user_agent="replicate-emulator",
        )
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emulator-media")
        self._webhooks = WebhookDispatcher(self.config, self.dice, self._client)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="emulator-sweeper")

    async def aclose(self) -> None:
        """Cancel every background task and close what `start()` opened."""
        if not self.started:
            return
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._sweeper = None
        if self._webhooks is not None:
            await self._webhooks.aclose()
            self._webhooks = None
        if self._executor is not None:
            # Renders in progress finish on their own; queued ones are dropped.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Emulator]:
        """Start for the duration of the block (for a host app's lifespan)."""
        self.start()
        try:
            yield self
        finally:
            await self.aclose()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def client(self) -> httpx.AsyncClient:
        """The emulator's HTTP client (no proxy from the environment), starting the
        emulator first if need be (so only inside a running event loop)."""
        self.start()
        assert self._client is not None
        return self._client

    @property
    def fetcher(self) -> Fetcher:
        """The fetcher of prediction inputs: public addresses only (plus
        `config.input_allowed_hosts`), at most `config.max_input_bytes` and
        `config.input_fetch_timeout_seconds` each. Starts the emulator if need be."""
        self.start()
        assert self._fetcher is not None
        return self._fetcher

    @property
    def webhooks(self) -> WebhookDispatcher:
        """The dispatcher that delivers (and retries) webhooks; starts the emulator if
        need be."""
        self.start()
        assert self._webhooks is not None
        return self._webhooks

    # -- predictions ---------------------------------------------------------------

    async def prepare_input(
        self, spec: ModelSpec, raw: object
    ) -> tuple[dict[str, Any], dict[str, Image.Image]]:
        """Validate `raw` and fetch and decode its images; `InputInvalid` with every problem."""
        values, problems = validate_input(spec, raw)
        file_inputs = [name for name in (spec.image_input, *spec.extra_file_inputs) if name]
        wanted = [name for name in file_inputs if name in values]
        images: dict[str, Image.Image] = {}
        if wanted:
            fetched = await asyncio.gather(*(self._load_image(values[name]) for name in wanted))
            for name, result in zip(wanted, fetched, strict=True):
                if isinstance(result, str):
                    problems.append(InvalidField("invalid_file", f"input.{name}", result))
                else:
                    images[name] = result
        if problems:
            raise InputInvalid(problems)
        return values, images

    async def _load_image(self, url: str) -> Image.Image | str:
        """The decoded image at `url`, or why it could not be had."""
        config = self.config
        try:
            data = await fetch_input(
                url,
                fetcher=self.fetcher,
                local=self.local_file_bytes,
                max_bytes=config.max_input_bytes,
            )
        except InputFetchError as error:
            if error.__cause__ is not None:
                logger.info("input %s not fetched: %s", url, error.__cause__)
            return f"Could not fetch file: {error}"
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, decode_image, data)
        except MediaError as error:
            return f"Could not read image: {error}"

    def create_prediction(
        self,
        spec: ModelSpec,
        raw_input: dict[str, Any],
        values: Mapping[str, Any],
        images: Mapping[str, Image.Image],
        *,
        base_url: str,
        webhook: str | None = None,
        webhook_completed: str | None = None,
        events: frozenset[str] | None = None,
    ) -> PredictionRecord:
        """Create a prediction from validated input and start playing its timeline."""
        self.start()
        job = plan_job(spec, values, images, pick_seed=self.dice.model_seed)
        self._seq += 1
        record = PredictionRecord(
            id=new_prediction_id(),
            seq=self._seq,
            spec=spec,
            input=raw_input,
            base_url=base_url,
            latency_seconds=max(0, self.config.latency_ms) / 1000,
            webhook=webhook,
            webhook_completed=webhook_completed,
            events=events if events is not None else frozenset(WEBHOOK_EVENTS),
            doomed=self.dice.roll(self.config.failure_rate),
        )
        self.predictions[record.id] = record
        self._notify(record, "start")
        record.task = self._spawn(self._run(record, job), f"prediction-{record.id}")
        return record

    def get(self, prediction_id: str) -> PredictionRecord | None:
        """The prediction with this id, or None (`GET /v1/predictions/{id}` answers 404).

        A succeeded prediction whose outputs are past their expiry
        (`config.output_ttl_seconds`, an hour as on Replicate:
        https://replicate.com/docs/topics/predictions/data-retention) has them removed
        first (`data_removed`, output None, files deleted).
        """
        record = self.predictions.get(prediction_id)
        if record is not None:
            self._expire_if_due(record, time.time())
        return record

    async def wait(self, record: PredictionRecord, seconds: float) -> None:
        """Until the prediction ends or `seconds` pass (for `Prefer: wait`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await record.done.wait()

    def cancel(self, record: PredictionRecord) -> None:
        """Cancel a prediction that has not ended; one that has is left as it is."""
        if record.terminal:
            return
        if record.task is not None:
            record.task.cancel()
        record.status = "canceled"
        record.completed_at = utc_now()
        self._set_times(record)
        self._finish(record)

    def page(self, cursor: str | None) -> PredictionPage | None:
        """A page of predictions, newest first; None if the cursor is not one of ours."""
        size = self.config.page_size
        ordered = sorted(self.predictions.values(), key=lambda record: record.seq, reverse=True)
        now = time.time()
        for record in ordered:
            self._expire_if_due(record, now)
        if cursor is None:
            results = ordered[:size]
        else:
            decoded = decode_cursor(cursor)
            if decoded is None:
                return None
            direction, seq = decoded
            if direction == "before":
                results = [record for record in ordered if record.seq < seq][:size]
            else:
                results = [record for record in ordered if record.seq > seq][-size:]
        next_cursor = previous_cursor = None
        if results:
            if any(record.seq < results[-1].seq for record in ordered):
                next_cursor = encode_cursor("before", results[-1].seq)
            if any(record.seq > results[0].seq for record in ordered):
                previous_cursor = encode_cursor("after", results[0].seq)
        return PredictionPage(results, next_cursor, previous_cursor)

    def deliveries(self, prediction_id: str) -> list[Delivery]:
        """The webhook deliveries of a prediction, in event order."""
        return self.webhooks.deliveries(prediction_id)

    # -- the timeline ----------------------------------------------------------------

    async def _run(self, record: PredictionRecord, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(record.latency_seconds * STARTING_SHARE)
            record.status = "processing"
            record.started_at = utc_now()
            began = loop.time()
            record.append_logs(*job.prelude)
            self._notify(record, "logs")
            render = (
                loop.run_in_executor(self._executor, job.render) if job.render is not None else None
            )
            processing = record.latency_seconds * (1 - STARTING_SHARE)
            for step in range(1, job.steps + 1):
                await asyncio.sleep(max(0.0, began + processing * step / job.steps - loop.time()))
                record.append_logs(progress_line(step, job.steps, loop.time() - began))
                if job.tokens is not None:
                    shown = math.ceil(len(job.tokens) * step / job.steps)
                    if record.output is None or shown > len(record.output):
                        record.output = job.tokens[:shown]
                        self._notify(record, "output")
                self._notify(record, "logs")
            files = await render if render is not None else []
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A render that breaks is the model failing, as on Replicate: the
            # prediction fails with the error, and the emulator carries on.
            logger.exception("prediction %s failed to render", record.id)
            self._fail(record, f"{type(error).__name__}: {error}")
            return
        if record.terminal:  # canceled while the render was finishing
            return
        if record.doomed:
            record.append_logs(
                "Traceback (most recent call last):", "RuntimeError: " + FAILURE_MESSAGE
            )
            self._fail(record, FAILURE_MESSAGE)
            return
        self._succeed(record, job, files)

    def _succeed(self, record: PredictionRecord, job: Job, files: list[OutputFile]) -> None:
        ttl = self.config.output_ttl_seconds
        folder = secrets.token_hex(12)
        urls: list[str] = []
        for output in files:
            key = f"{folder}/{output.filename}"
            self.files.put(key, output.data, output.content_type, ttl)
            record.output_keys.append(key)
            urls.append(f"{record.base_url}/files/{key}")
        if job.tokens is not None:
            record.output = list(job.tokens)
        else:
            record.output = urls[0] if job.single_file and urls else urls
            self._notify(record, "output")
        record.status = "succeeded"
        record.completed_at = utc_now()
        record.output_expires_at = time.time() + ttl
        self._expiring[record.id] = record
        record.metrics.update(job.metrics)
        self._set_times(record)
        predict_time = record.metrics.get("predict_time")
        if job.tokens is not None and isinstance(predict_time, float) and predict_time > 0:
            record.metrics["tokens_per_second"] = round(len(job.tokens) / predict_time, 3)
        self._finish(record)

    def _fail(self, record: PredictionRecord, message: str) -> None:
        record.status = "failed"
        record.error = message
        record.output = None
        record.completed_at = utc_now()
        self._set_times(record)
        self._finish(record)

    def _set_times(self, record: PredictionRecord) -> None:
        if record.completed_at is None:
            return
        record.metrics["total_time"] = round(
            (record.completed_at - record.created_at).total_seconds(), 6
        )
        if record.started_at is not None:
            record.metrics["predict_time"] = round(
                (record.completed_at - record.started_at).total_seconds(), 6
            )

    def _finish(self, record: PredictionRecord) -> None:
        self._notify(record, "completed")
        record.done.set()

    def _notify(self, record: PredictionRecord, event: str) -> None:
        """Send the webhooks an event calls for (start, output, logs or completed)."""
        if event in ("logs", "output"):
            # Replicate sends these at most once per 500 ms each; the final state
            # always arrives with `completed`.
            now = time.monotonic()
            last = record.last_progress_event.get(event)
            if last is not None and now - last < self.config.webhook_progress_interval_seconds:
                return
            record.last_progress_event[event] = now
        targets: list[str] = []
        if record.webhook and (event in record.events or event == "completed"):
            targets.append(record.webhook)
        if event == "completed" and record.webhook_completed:
            targets.append(record.webhook_completed)
        if targets:
            body = json.dumps(record.to_json()).encode()
            for url in targets:
                self.webhooks.emit(record.id, url, event, body)
        if event == "completed" and (record.webhook or record.webhook_completed):
            self.webhooks.finish(record.id)

    # -- files -----------------------------------------------------------------------

    def local_file_bytes(self, url: str) -> bytes | None:
        """The bytes behind one of our own URLs (an output or an upload), else None.

        Matched on the path alone, so `localhost` and `127.0.0.1` (or a proxy's
        name) all resolve; an unknown key falls through to a real download.
        """
        path = urlsplit(url).path
        if "/files/" in path and "/v1/files/" not in path:
            key = path.split("/files/", 1)[1]
            stored = self.files.get(key)
            return stored.data if stored is not None else None
        if "/v1/files/" in path:
            rest = path.split("/v1/files/", 1)[1]
            file_id = rest.removesuffix("/download").strip("/")
            upload = self.uploads.get(file_id)
            if upload is not None:
                stored = self.files.get(upload.store_key)
                return stored.data if stored is not None else None
        return None

    # -- expiry ------------------------------------------------------------------------

    def _expire_if_due(self, record: PredictionRecord, now: float) -> None:
        if record.data_removed or record.output_expires_at is None:
            return
        if record.output_expires_at <= now:
            self._expiring.pop(record.id, None)
            record.data_removed = True
            record.output = None
            for key in record.output_keys:
                self.files.delete(key)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.time()
            for record in list(self._expiring.values()):
                self._expire_if_due(record, now)
            self.files.sweep()
            self.uploads.sweep(now)
