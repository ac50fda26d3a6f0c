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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from services import decoding
from services.replicate.emulator.catalog import MODELS, find_model, find_version
from services.replicate.emulator.config import EmulatorConfig
from services.replicate.emulator.emulator import Emulator, InputInvalid
from services.replicate.emulator.faults import FAULT_DEFAULTS, apply_settings, settings_snapshot
from services.replicate.emulator.problems import (
    bad_request,
    not_found,
    problem,
    throttled,
    unauthenticated,
    unavailable,
    validation_failed,
)
from services.replicate.emulator.specs import InvalidField, ModelSpec
from services.replicate.emulator.wire import (
    MAX_JSON_DEPTH,
    api_token,
    authenticated,
    base_url,
    check_webhook_fields,
    file_response,
    json_body,
    model_json,
    parse_prefer_wait,
    version_json,
)

logger = logging.getLogger("studio.emulator")

Handler = Callable[[Request], Awaitable[Response]]
ALL_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


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
            if not authenticated(state, request):
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
            key = (bucket, api_token(request) or f"anonymous@{client}")
            retry_after = state.limiter.acquire(key, limit)
            if retry_after is not None:
                return throttled(retry_after)
            return await handler(request)

        return endpoint

    def admin(handler: Handler) -> Handler:
        """The private API: token-protected like the rest, never down, never throttled."""

        async def endpoint(request: Request) -> Response:
            state.start()
            if not authenticated(state, request):
                return unauthenticated()
            return await handler(request)

        return endpoint

    # -- predictions -----------------------------------------------------------------

    async def create(request: Request, spec: ModelSpec, body: dict[str, Any]) -> Response:
        try:
            wait = parse_prefer_wait(request.headers.get("prefer"))
        except ValueError as error:
            return bad_request(f'Invalid "Prefer" header: {error}.')
        webhook, problems = check_webhook_fields(body)
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
            base_url=base_url(state, request),
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
        body, error = await json_body(request)
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
        body, error = await json_body(request)
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
        base = base_url(state, request)

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
        upload = state.uploads.add(
            data,
            filename=filename,
            content_type=content_type,
            metadata=metadata,
            base_url=base_url(state, request),
            ttl=state.config.file_ttl_seconds,
        )
        return JSONResponse(upload.to_json(), status_code=201)

    async def list_files(request: Request) -> Response:
        uploads = state.uploads.current()
        return JSONResponse(
            {"next": None, "previous": None, "results": [upload.to_json() for upload in uploads]}
        )

    async def get_file(request: Request) -> Response:
        upload = state.uploads.get(request.path_params["id"])
        if upload is None:
            return not_found()
        return JSONResponse(upload.to_json())

    async def delete_file(request: Request) -> Response:
        if not state.uploads.delete(request.path_params["id"]):
            return not_found()
        return Response(status_code=204)

    async def download_file(request: Request) -> Response:
        upload = state.uploads.get(request.path_params["id"])
        stored = state.files.get(upload.store_key) if upload is not None else None
        response = file_response(stored) if stored is not None else None
        return not_found() if response is None else response

    async def serve_output(request: Request) -> Response:
        key = request.path_params["key"]
        stored = state.files.get(key) if not key.startswith("uploads/") else None
        response = file_response(stored) if stored is not None else None
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
                "results": [model_json(state, spec) for spec in MODELS],
            }
        )

    async def get_model(request: Request) -> Response:
        spec = find_model(request.path_params["owner"], request.path_params["name"])
        if spec is None:
            return not_found()
        return JSONResponse(model_json(state, spec))

    async def list_versions(request: Request) -> Response:
        spec = find_model(request.path_params["owner"], request.path_params["name"])
        if spec is None:
            return not_found()
        return JSONResponse({"next": None, "previous": None, "results": [version_json(spec)]})

    async def get_version(request: Request) -> Response:
        spec = find_model(request.path_params["owner"], request.path_params["name"])
        if spec is None or spec.version != request.path_params["version"]:
            return not_found()
        return JSONResponse(version_json(spec))

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
        body, error = await json_body(request)
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
