"""The emulator's HTTP face: Replicate's API routes, file delivery, and a private admin API.

    POST /v1/models/{owner}/{name}/predictions    create (official models)
    POST /v1/predictions                          create (by version)
    GET  /v1/predictions[?cursor=]                list, newest first
    GET  /v1/predictions/{id}                     get
    POST /v1/predictions/{id}/cancel              cancel
    POST /v1/files, GET /v1/files, GET|DELETE /v1/files/{id}, GET /v1/files/{id}/download
    GET  /v1/webhooks/default/secret              {"key": "whsec_..."} (only with an api_token)
    GET  /v1/models[/{owner}/{name}[/versions[/{id}]]], GET /v1/account
    GET|HEAD /files/{key}                         outputs (no auth, Range support), like a CDN

    GET|POST /_emulator/faults                    read / change settings at run time
    POST /_emulator/reset                         faults to defaults, rate windows emptied
    GET  /_emulator/health
    GET  /_emulator/predictions/{id}/webhooks     what became of each webhook
    GET  /_emulator/requests                      API requests received, by method and route
                                                  (reset by POST /_emulator/reset)

Every `/v1` call passes, in order: the `down` fault (503), authentication (401), the
create `throttle_rate` fault and the sliding rate windows (429).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from services import decoding
from services.decoding import decimal
from services.replicate.emulator.catalog import (
    MODELS,
    InvalidField,
    ModelSpec,
    find_model,
    find_version,
)
from services.replicate.emulator.config import EmulatorConfig
from services.replicate.emulator.emulator import Emulator, InputInvalid
from services.replicate.emulator.faults import FAULT_DEFAULTS, apply_settings, settings_snapshot
from services.replicate.emulator.predictions import WEBHOOK_EVENTS
from services.replicate.emulator.problems import (
    bad_request,
    not_found,
    problem,
    throttled,
    unauthenticated,
    unavailable,
    validation_failed,
)
from services.replicate.emulator.store import StoredFile

logger = logging.getLogger("studio.emulator")

Handler = Callable[[Request], Awaitable[Response]]
MAX_WAIT_SECONDS: Final = 60
MAX_JSON_DEPTH: Final = 64
COG_VERSION: Final = "0.9.13"
ALL_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _base_url(emulator: Emulator, request: Request) -> str:
    """`public_url`, or the URL this request came in on (including a mount's prefix)."""
    return emulator.config.public_url or str(request.base_url).rstrip("/")


def _bearer_token(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and credential.strip():
        return credential.strip()
    return None


def _authenticated(emulator: Emulator, request: Request) -> bool:
    expected = emulator.config.api_token
    if not expected:
        return True
    given = _bearer_token(request)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _parse_prefer_wait(header: str | None) -> int | None:
    """Seconds to hold a create for `Prefer: wait[=N]`; None without; ValueError if invalid."""
    if not header:
        return None
    for preference in header.split(","):
        name, equals, value = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        if not equals:
            return MAX_WAIT_SECONDS
        seconds = decimal(value.strip().strip('"'), low=1, high=MAX_WAIT_SECONDS)
        if seconds is None:
            raise ValueError(f"wait must be an integer between 1 and {MAX_WAIT_SECONDS}")
        return seconds
    return None


async def _json_body(request: Request) -> tuple[Any, Response | None]:
    raw = await request.body()
    if not raw.strip():
        return {}, None
    try:
        # No NaN/Infinity (not JSON, and Replicate's parser refuses them), bounded nesting.
        return decoding.loads(raw, max_depth=MAX_JSON_DEPTH), None
    except decoding.MalformedJson:
        return None, bad_request("The request body is not valid JSON.")


def _check_webhook_fields(body: dict[str, Any]) -> tuple[dict[str, Any], list[InvalidField]]:
    """`webhook`, `webhook_completed` and `webhook_events_filter`, checked."""
    problems: list[InvalidField] = []
    found: dict[str, Any] = {"webhook": None, "webhook_completed": None, "events": None}
    for name in ("webhook", "webhook_completed"):
        value = body.get(name)
        if value is None:
            continue
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(InvalidField("format", name, "Does not match format 'uri'"))
        else:
            found[name] = value
    events = body.get("webhook_events_filter")
    if events is not None:
        if not isinstance(events, list) or not all(isinstance(event, str) for event in events):
            problems.append(
                InvalidField(
                    "invalid_type",
                    "webhook_events_filter",
                    "Invalid type. Expected: array of strings",
                )
            )
        else:
            allowed = ", ".join(json.dumps(event) for event in WEBHOOK_EVENTS)
            for index, event in enumerate(events):
                if event not in WEBHOOK_EVENTS:
                    problems.append(
                        InvalidField(
                            "enum",
                            f"webhook_events_filter.{index}",
                            f"webhook_events_filter.{index} must be one of the following: "
                            + allowed,
                        )
                    )
            found["events"] = frozenset(events)
    return found, problems


def _model_json(emulator: Emulator, spec: ModelSpec) -> dict[str, Any]:
    runs = sum(1 for record in emulator.predictions.values() if record.spec is spec)
    return {
        "url": f"https://replicate.com/{spec.ref}",
        "owner": spec.owner,
        "name": spec.name,
        "description": spec.description,
        "visibility": "public",
        "is_official": spec.official,
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": runs,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": _version_json(spec),
    }


def _version_json(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.version,
        "created_at": spec.created_at,
        "cog_version": COG_VERSION,
        "openapi_schema": spec.openapi_schema(),
    }


def _file_response(stored: StoredFile) -> Response | None:
    """The file as Replicate's delivery network sends it: Content-Type, Content-Length,
    ETag and Last-Modified, byte ranges (several at once as multipart/byteranges) and
    If-Range, all by Starlette's FileResponse. None if it expired a moment ago."""
    try:
        stat = stored.path.stat()
    except FileNotFoundError:
        return None
    return FileResponse(
        stored.path,
        media_type=stored.content_type,
        stat_result=stat,
        headers={"cache-control": "public, max-age=3600"},
    )


def create_emulator_app(
    config: EmulatorConfig | None = None, *, emulator: Emulator | None = None
) -> Starlette:
    """The emulator as a Starlette app; `app.state.emulator` is its `Emulator`.

    Run on its own (e.g. by uvicorn), its lifespan starts and stops the background
    work. Mounted in another app, whose lifespan does not run a mounted app's, enter
    `app.state.emulator.running()` in the host's lifespan so shutdown cancels that
    work; without it the emulator starts on its first request and is never stopped.
    """
    if emulator is None:
        emulator = Emulator(config)
    elif config is not None and config is not emulator.config:
        raise ValueError("pass a config or an emulator, not an emulator with another config")
    state = emulator

    def api(handler: Handler, *, bucket: str = "other") -> Handler:
        """The checks every API call passes before its handler."""

        async def endpoint(request: Request) -> Response:
            state.start()
            route = request.scope.get("route")
            path = route.path if isinstance(route, Route) else request.url.path
            state.requests[f"{request.method} {path}"] += 1
            current = state.config
            if current.down:
                return unavailable()
            if not _authenticated(state, request):
                return unauthenticated()
            if bucket == "create" and state.dice.roll(current.throttle_rate):
                # An injected throttle is a burst limit, not an exhausted window:
                # the caller may try again in a second.
                return throttled(1)
            limit = (
                current.create_limit_per_minute
                if bucket == "create"
                else current.other_limit_per_minute
            )
            client = request.client.host if request.client else "unknown"
            key = (bucket, _bearer_token(request) or f"anonymous@{client}")
            retry_after = state.limiter.acquire(key, limit)
            if retry_after is not None:
                return throttled(retry_after)
            return await handler(request)

        return endpoint

    def admin(handler: Handler) -> Handler:
        """The private API: token-protected like the rest, never down, never throttled."""

        async def endpoint(request: Request) -> Response:
            state.start()
            if not _authenticated(state, request):
                return unauthenticated()
            return await handler(request)

        return endpoint

    # -- predictions -----------------------------------------------------------------

    async def create(request: Request, spec: ModelSpec, body: dict[str, Any]) -> Response:
        try:
            wait = _parse_prefer_wait(request.headers.get("prefer"))
        except ValueError as error:
            return bad_request(f'Invalid "Prefer" header: {error}.')
        webhook, problems = _check_webhook_fields(body)
        if "input" not in body:
            problems.insert(0, InvalidField("required", "(root)", "input is required"))
            values: dict[str, Any] = {}
            images: dict[str, Image.Image] = {}
        else:
            try:
                values, images = await state.prepare_input(spec, body["input"])
            except InputInvalid as invalid:
                problems = [*invalid.problems, *problems]
        if problems:
            return validation_failed(problems)
        record = state.create_prediction(
            spec,
            dict(body["input"]),
            values,
            images,
            base_url=_base_url(state, request),
            webhook=webhook["webhook"],
            webhook_completed=webhook["webhook_completed"],
            events=webhook["events"],
        )
        if state.config.create_response_delay_ms:
            await asyncio.sleep(state.config.create_response_delay_ms / 1000)
        if wait is None:
            return JSONResponse(record.to_json(), status_code=201)
        await state.wait(record, wait)
        answer = record.to_json()
        if not record.terminal:
            # Replicate answers a wait that runs out with status "starting", even if
            # the prediction is processing, and the official client relies on it:
            # `run()` treats any other status from a blocking create as final.
            answer["status"] = "starting"
        return JSONResponse(answer, status_code=201)

    async def create_for_model(request: Request) -> Response:
        body, error = await _json_body(request)
        if error is not None:
            return error
        owner, name = request.path_params["owner"], request.path_params["name"]
        spec = find_model(owner, name)
        if spec is None:
            return not_found(f"Model {owner}/{name} does not exist, or you cannot see it.")
        if not spec.official:
            return not_found(
                f"{owner}/{name} is not an official model: create its predictions at "
                "POST /v1/predictions with a version."
            )
        if not isinstance(body, dict):
            return bad_request("The request body must be a JSON object.")
        return await create(request, spec, body)

    async def create_for_version(request: Request) -> Response:
        body, error = await _json_body(request)
        if error is not None:
            return error
        if not isinstance(body, dict):
            return bad_request("The request body must be a JSON object.")
        version = body.get("version")
        if not isinstance(version, str) or not version:
            return validation_failed([InvalidField("required", "(root)", "version is required")])
        spec = find_version(version)
        if spec is None:
            return problem(
                422,
                "Invalid version or not permitted",
                "The specified version does not exist "
                "(or perhaps you don't have permission to use it?)",
                kind="invalid-version",
            )
        return await create(request, spec, body)

    async def get_prediction(request: Request) -> Response:
        record = state.get(request.path_params["id"])
        if record is None:
            return not_found()
        return JSONResponse(record.to_json())

    async def cancel_prediction(request: Request) -> Response:
        record = state.get(request.path_params["id"])
        if record is None:
            return not_found()
        state.cancel(record)
        return JSONResponse(record.to_json())

    async def list_predictions(request: Request) -> Response:
        cursor = request.query_params.get("cursor")
        page = state.page(cursor)
        if page is None:
            return bad_request("Invalid cursor.")
        base = _base_url(state, request)

        def link(value: str | None) -> str | None:
            return f"{base}/v1/predictions?cursor={value}" if value else None

        return JSONResponse(
            {
                "next": link(page.next_cursor),
                "previous": link(page.previous_cursor),
                "results": [record.to_json() for record in page.results],
            }
        )

    # -- files -------------------------------------------------------------------------

    async def create_file(request: Request) -> Response:
        try:
            async with request.form() as form:
                content = form.get("content")
                if not isinstance(content, UploadFile):
                    return validation_failed(
                        [InvalidField("required", "content", "content is required (a file part)")]
                    )
                data = await content.read()
                filename = str(form.get("filename") or content.filename or "file")
                content_type = str(
                    form.get("type") or content.content_type or "application/octet-stream"
                )
                raw_metadata = form.get("metadata")
        except HTTPException as error:
            return bad_request(str(error.detail))
        if len(data) > state.config.max_input_bytes:
            return problem(
                413,
                "Payload Too Large",
                f"Files may be at most {state.config.max_input_bytes} bytes.",
                kind="payload-too-large",
            )
        metadata: Any = {}
        if isinstance(raw_metadata, str) and raw_metadata.strip():
            try:
                metadata = decoding.loads(raw_metadata, max_depth=MAX_JSON_DEPTH)
            except decoding.MalformedJson:
                metadata = None
            if not isinstance(metadata, dict):
                return validation_failed(
                    [InvalidField("invalid_type", "metadata", "Invalid type. Expected: object")]
                )
        upload = state.upload(
            data,
            filename=filename,
            content_type=content_type,
            metadata=metadata,
            base_url=_base_url(state, request),
        )
        return JSONResponse(upload.to_json(), status_code=201)

    async def list_files(request: Request) -> Response:
        uploads = [
            upload for file_id in list(state.uploads) if (upload := state.get_upload(file_id))
        ]
        uploads.sort(key=lambda upload: upload.created_at, reverse=True)
        return JSONResponse(
            {"next": None, "previous": None, "results": [upload.to_json() for upload in uploads]}
        )

    async def get_file(request: Request) -> Response:
        upload = state.get_upload(request.path_params["id"])
        if upload is None:
            return not_found()
        return JSONResponse(upload.to_json())

    async def delete_file(request: Request) -> Response:
        if not state.delete_upload(request.path_params["id"]):
            return not_found()
        return Response(status_code=204)

    async def download_file(request: Request) -> Response:
        upload = state.get_upload(request.path_params["id"])
        stored = state.files.get(upload.store_key) if upload is not None else None
        response = _file_response(stored) if stored is not None else None
        return not_found() if response is None else response

    async def serve_output(request: Request) -> Response:
        key = request.path_params["key"]
        stored = state.files.get(key) if not key.startswith("uploads/") else None
        response = _file_response(stored) if stored is not None else None
        if response is None:
            return not_found("The file does not exist or has expired.")
        return response

    # -- models, account, webhooks ---------------------------------------------------------

    async def webhook_secret(request: Request) -> Response:
        # The key that signs webhooks: whoever holds it can forge them. `api()` let the
        # request through, but an emulator without a token lets everyone through, so this
        # one needs a configured token too (Replicate never answers it without one).
        if not state.config.api_token:
            return unauthenticated()
        return JSONResponse({"key": state.config.webhook_secret})

    async def list_models(request: Request) -> Response:
        return JSONResponse(
            {
                "next": None,
                "previous": None,
                "results": [_model_json(state, spec) for spec in MODELS],
            }
        )

    async def get_model(request: Request) -> Response:
        spec = find_model(request.path_params["owner"], request.path_params["name"])
        if spec is None:
            return not_found()
        return JSONResponse(_model_json(state, spec))

    async def list_versions(request: Request) -> Response:
        spec = find_model(request.path_params["owner"], request.path_params["name"])
        if spec is None:
            return not_found()
        return JSONResponse({"next": None, "previous": None, "results": [_version_json(spec)]})

    async def get_version(request: Request) -> Response:
        spec = find_model(request.path_params["owner"], request.path_params["name"])
        if spec is None or spec.version != request.path_params["version"]:
            return not_found()
        return JSONResponse(_version_json(spec))

    async def account(request: Request) -> Response:
        return JSONResponse(
            {
                "type": "organization",
                "username": "emulator",
                "name": "Replicate emulator",
                "github_url": None,
            }
        )

    # -- admin -------------------------------------------------------------------------------

    async def get_faults(request: Request) -> Response:
        return JSONResponse(settings_snapshot(state.config))

    async def set_faults(request: Request) -> Response:
        body, error = await _json_body(request)
        if error is not None:
            return error
        problems = apply_settings(state.config, body)
        if problems:
            return validation_failed(problems)
        logger.info("emulator settings changed: %s", body)
        return JSONResponse(settings_snapshot(state.config))

    async def reset(request: Request) -> Response:
        apply_settings(state.config, dict(FAULT_DEFAULTS))
        state.limiter.reset()
        state.requests.clear()
        return JSONResponse(settings_snapshot(state.config))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "predictions": len(state.predictions)})

    async def request_counts(request: Request) -> Response:
        return JSONResponse(
            {
                "total": sum(state.requests.values()),
                "by_route": dict(sorted(state.requests.items())),
            }
        )

    async def webhook_log(request: Request) -> Response:
        prediction_id = request.path_params["id"]
        if state.get(prediction_id) is None:
            return not_found()
        return JSONResponse([delivery.to_json() for delivery in state.deliveries(prediction_id)])

    routes: list[BaseRoute] = [
        Route(
            "/v1/models/{owner}/{name}/predictions",
            api(create_for_model, bucket="create"),
            methods=["POST"],
        ),
        Route("/v1/models/{owner}/{name}/versions/{version}", api(get_version), methods=["GET"]),
        Route("/v1/models/{owner}/{name}/versions", api(list_versions), methods=["GET"]),
        Route("/v1/models/{owner}/{name}", api(get_model), methods=["GET"]),
        Route("/v1/models", api(list_models), methods=["GET"]),
        Route("/v1/predictions", api(create_for_version, bucket="create"), methods=["POST"]),
        Route("/v1/predictions", api(list_predictions), methods=["GET"]),
        Route("/v1/predictions/{id}", api(get_prediction), methods=["GET"]),
        Route("/v1/predictions/{id}/cancel", api(cancel_prediction), methods=["POST"]),
        Route("/v1/files", api(create_file), methods=["POST"]),
        Route("/v1/files", api(list_files), methods=["GET"]),
        Route("/v1/files/{id}", api(get_file), methods=["GET"]),
        Route("/v1/files/{id}", api(delete_file), methods=["DELETE"]),
        Route("/v1/files/{id}/download", api(download_file), methods=["GET"]),
        Route("/v1/webhooks/default/secret", api(webhook_secret), methods=["GET"]),
        Route("/v1/account", api(account), methods=["GET"]),
        Route("/files/{key:path}", serve_output, methods=["GET", "HEAD"]),
        Route("/_emulator/faults", admin(get_faults), methods=["GET"]),
        Route("/_emulator/faults", admin(set_faults), methods=["POST"]),
        Route("/_emulator/reset", admin(reset), methods=["POST"]),
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/predictions/{id}/webhooks", admin(webhook_log), methods=["GET"]),
        Route("/_emulator/requests", admin(request_counts), methods=["GET"]),
    ]

    async def unknown(request: Request) -> Response:
        # Starlette prefers a full match over a method mismatch, so this catch-all
        # would swallow 405s; look for a route that has the path but not the method.
        allowed = sorted(
            {
                method
                for route in routes
                if isinstance(route, Route)
                and route.methods
                and route.matches(request.scope)[0] == Match.PARTIAL
                for method in route.methods
            }
        )
        if allowed:
            return problem(
                405,
                "Method Not Allowed",
                f"{request.method} is not allowed here.",
                kind="method-not-allowed",
                headers={"allow": ", ".join(allowed)},
            )
        return not_found()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with state.running():
            yield

    app = Starlette(
        routes=[*routes, Route("/v1/{rest:path}", api(unknown), methods=ALL_METHODS)],
        lifespan=lifespan,
    )
    app.state.emulator = state
    return app


async def serve_emulator(
    host: str = "127.0.0.1",
    port: int = 8787,
    config: EmulatorConfig | None = None,
    *,
    log_level: str = "info",
) -> None:
    """Serve the emulator with uvicorn until interrupted (SIGINT/SIGTERM stop it cleanly).

    Without a `public_url` in `config`, URLs point at http://{host}:{port} (with
    127.0.0.1 for a wildcard host, since clients cannot connect to 0.0.0.0).
    """
    config = config if config is not None else EmulatorConfig()
    if not config.public_url:
        reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
        if ":" in reachable:
            reachable = f"[{reachable}]"
        config.public_url = f"http://{reachable}:{port}"
    app = create_emulator_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    )
    logger.info("Replicate emulator at %s", config.public_url)
    await server.serve()
