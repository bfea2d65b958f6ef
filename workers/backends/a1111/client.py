"""Async client for the A1111-family HTTP API (A1111, Forge, Forge Neo, SD.Next): one method per endpoint.

Generation calls are synchronous on the server (the answer comes when the images are done, and a second request
waits for the first), so reads get a long timeout while connects fail fast. Errors are mapped onto the small
hierarchy in :mod:`workers.backends.errors`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from workers.backends import http
from workers.backends.a1111.models import (
    ExtrasPayload,
    ExtrasResponse,
    GenerationResponse,
    Img2ImgPayload,
    InternalProgress,
    LatentUpscaleMode,
    Lora,
    Progress,
    Sampler,
    Scheduler,
    SDModel,
    Txt2ImgPayload,
    Upscaler,
)
from workers.backends.errors import (
    BackendError,
    BackendRejected,
    BackendServerError,
    OutOfMemory,
    is_out_of_memory,
)

T = TypeVar("T")

# A1111 request fields -> the Easel field a user set (for refusals that name the field)
_FIELDS = {
    "sampler_name": "sampler", "sampler_index": "sampler", "hr_upscaler": "hires.upscaler", "upscaler_1": "upscaler",
    "init_images": "init_image", "hr_scale": "hires.scale", "hr_second_pass_steps": "hires.second_pass_steps",
    "upscaling_resize": "scale", "image": "image", "n_iter": "batch_size",
}


class WebUIClient:
    """One WebUI. Use as ``async with WebUIClient(url) as webui:`` or call :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            timeout=http.timeouts(connect=connect_timeout, read=read_timeout),
            transport=transport,
        )
        # progress/interrupt must not wait behind a long generation: a second, short-timeout client.
        self._quick = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            timeout=http.timeouts(connect=connect_timeout, read=min(read_timeout, 10.0)),
            transport=transport,
        )

    async def __aenter__(self) -> WebUIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._quick.aclose()

    # --- generation --------------------------------------------------------------------------------------

    async def txt2img(self, payload: Txt2ImgPayload) -> GenerationResponse:
        return await self._call("POST", "/sdapi/v1/txt2img", GenerationResponse, payload)

    async def img2img(self, payload: Img2ImgPayload) -> GenerationResponse:
        return await self._call("POST", "/sdapi/v1/img2img", GenerationResponse, payload)

    async def extra_single_image(self, payload: ExtrasPayload) -> ExtrasResponse:
        return await self._call("POST", "/sdapi/v1/extra-single-image", ExtrasResponse, payload)

    # --- state -------------------------------------------------------------------------------------------

    async def progress(self, *, skip_current_image: bool = False) -> Progress:
        params = {"skip_current_image": str(skip_current_image).lower()}
        return await self._call("GET", "/sdapi/v1/progress", Progress, params=params, quick=True)

    async def interrupt(self) -> None:
        await self._send("POST", "/sdapi/v1/interrupt", quick=True)

    async def get_options(self) -> dict[str, Any]:
        return await self._call("GET", "/sdapi/v1/options", dict[str, Any])

    async def set_options(self, options: dict[str, Any]) -> None:
        """Set WebUI options; setting ``sd_model_checkpoint`` loads that model before the call returns (A1111)."""
        await self._send("POST", "/sdapi/v1/options", json=options)

    async def current_checkpoint(self) -> str | None:
        value = (await self.get_options()).get("sd_model_checkpoint")
        return value if isinstance(value, str) else None

    async def set_checkpoint(self, title: str) -> None:
        await self.set_options({"sd_model_checkpoint": title})

    # --- lists -------------------------------------------------------------------------------------------

    async def sd_models(self) -> list[SDModel]:
        return await self._call("GET", "/sdapi/v1/sd-models", list[SDModel])

    async def samplers(self) -> list[Sampler]:
        return await self._call("GET", "/sdapi/v1/samplers", list[Sampler])

    async def schedulers(self) -> list[Scheduler]:
        return await self._call("GET", "/sdapi/v1/schedulers", list[Scheduler])

    async def upscalers(self) -> list[Upscaler]:
        return await self._call("GET", "/sdapi/v1/upscalers", list[Upscaler])

    async def latent_upscale_modes(self) -> list[LatentUpscaleMode]:
        return await self._call("GET", "/sdapi/v1/latent-upscale-modes", list[LatentUpscaleMode])

    async def loras(self) -> list[Lora]:
        return await self._call("GET", "/sdapi/v1/loras", list[Lora])

    # --- flavour-specific --------------------------------------------------------------------------------

    async def exists(self, path: str) -> bool:
        """True if GET ``path`` answers 2xx (routes tell the flavours apart); 404 and other refusals are False."""
        try:
            await self._send("GET", path, quick=True)
        except BackendRejected:
            return False
        return True

    async def sdnext_version(self) -> dict[str, Any] | None:
        """SD.Next's ``/sdapi/v1/version`` (``{"app": "sd.next", "commit": ...}``); None on other servers."""
        try:
            answer = await self._call("GET", "/sdapi/v1/version", dict[str, Any], quick=True)
        except BackendError:
            return None
        return answer if answer.get("app") == "sd.next" else None

    async def internal_progress(self, *, id_live_preview: int) -> InternalProgress:
        """SD.Next's UI progress route: not rate-limited, unlike /sdapi/v1/progress (five calls a minute)."""
        body = {"id_task": "undefined", "id_live_preview": id_live_preview}  # "undefined": whatever job is running
        response = await self._send("POST", "/internal/progress", json=body, quick=True)
        return http.decode(InternalProgress, response, server=self._server, path="/internal/progress")

    # --- plumbing ----------------------------------------------------------------------------------------

    @property
    def _server(self) -> str:
        return f"the WebUI at {self.base_url}"

    async def _call(
        self,
        method: str,
        path: str,
        shape: type[T],
        payload: BaseModel | None = None,
        *,
        params: dict[str, str] | None = None,
        quick: bool = False,
    ) -> T:
        body = payload.model_dump(mode="json", exclude_none=True) if payload is not None else None
        response = await self._send(method, path, json=body, params=params, quick=quick)
        return http.decode(shape, response, server=self._server, path=path)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        quick: bool = False,
    ) -> httpx.Response:
        client = self._quick if quick else self._http
        response = await http.send(client, method, path, server=self._server, json=json, params=params)
        if response.is_success:
            return response
        raise _error_for(response, path)


def _error_for(response: httpx.Response, path: str) -> BackendError:
    status = response.status_code
    message = _backend_message(response)
    if status == 422:
        return BackendRejected(f"the WebUI refused the request: {message}", status=status, field=_field_of(response))
    if status >= 500 and is_out_of_memory(message):
        return OutOfMemory(f"the GPU ran out of memory: {message}", status=status)
    if 400 <= status < 500:
        field = "sampler" if "sampler not found" in message.lower() else _field_of(response)  # SD.Next: 404
        return BackendRejected(f"the WebUI refused {path} ({status}): {message}", status=status, field=field)
    return BackendServerError(f"the WebUI failed on {path} ({status}): {message}", status=status)


def _field_of(response: httpx.Response) -> str | None:
    """The Easel field behind the first field FastAPI's 422 names (``{"detail": [{"loc": ["body", "steps"]}]}``)."""
    try:
        detail = response.json().get("detail")
        loc = [str(p) for p in detail[0]["loc"] if p != "body"]
    except (ValueError, AttributeError, LookupError, TypeError):
        return None
    return _FIELDS.get(loc[0], loc[0]) if loc else None


def _backend_message(response: httpx.Response) -> str:
    """The human part of an A1111/Forge/SD.Next error body, or its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:300]
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI 422: [{"loc": [...], "msg": ...}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(parts) or str(detail)
    texts = [str(body[k]) for k in ("error", "errors", "message", "detail") if body.get(k)]
    return ": ".join(dict.fromkeys(texts)) or response.reason_phrase
