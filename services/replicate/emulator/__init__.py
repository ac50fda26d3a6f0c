"""A built-in emulator of Replicate's HTTP API, so the studio works offline and tests run.

It answers the paths, JSON, statuses, headers and error bodies of
api.replicate.com closely enough that the official `replicate` client works against
it unchanged (`replicate.Client(api_token=..., base_url="http://127.0.0.1:PORT")`),
runs a small catalog of models that make real media (Pillow images, H.264 clips via
ffmpeg, text), signs and delivers webhooks per Standard Webhooks, enforces rate
limits, expires outputs, and injects faults on demand.

    config.py       EmulatorConfig: timing, identity, limits, faults
    specs.py        what a model declares: inputs, kinds, bounds
    catalog.py      the models
    validation.py   input validation, as Replicate does it
    jobs.py         what each model's prediction logs and produces
    media.py        images, videos and text replies
    inputs.py       fetching file inputs (URLs, data URIs, own files)
    predictions.py  a prediction's state and JSON
    pages.py        pages of the prediction list, with cursors
    uploads.py      files uploaded to POST /v1/files
    emulator.py     Emulator: state, timelines, background tasks
    deliveries.py   webhook delivery (signed by services.replicate.signatures)
    faults.py       run-time settings and the fault dice
    ratelimit.py    the sliding window
    store.py        in-memory files with expiry; byte ranges
    problems.py     problem-details error responses
    wire.py         reading requests and writing responses
    app.py          the Starlette app and `serve_emulator`

Typical use:

    app = create_emulator_app(EmulatorConfig(latency_ms=500, public_url="http://127.0.0.1:8787"))
    await serve_emulator("127.0.0.1", 8787, EmulatorConfig())
"""

from services.replicate.emulator.app import create_emulator_app, serve_emulator
from services.replicate.emulator.catalog import MODELS, find_model, find_version
from services.replicate.emulator.config import EmulatorConfig, generate_webhook_secret
from services.replicate.emulator.emulator import Emulator
from services.replicate.emulator.specs import ModelSpec
from services.replicate.signatures import sign as sign_webhook

__all__ = [
    "MODELS",
    "Emulator",
    "EmulatorConfig",
    "ModelSpec",
    "create_emulator_app",
    "find_model",
    "find_version",
    "generate_webhook_secret",
    "serve_emulator",
    "sign_webhook",
]
