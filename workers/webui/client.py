"""Async client for the AUTOMATIC1111 (and Forge) HTTP API: one method per endpoint, typed results.

Generation calls are synchronous on the server (the answer comes when the images are done, and a second request
waits for the first), so reads get a long timeout while connects fail fast. Errors are mapped onto the small
hierarchy in :mod:`workers.webui.errors`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from workers.webui.errors import (
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    MalformedResponse,
    OutOfMemory,
    WebUIError,
)
from workers.webui.models import (
    ExtrasPayload,
    ExtrasResponse,
    GenerationResponse,
    Img2ImgPayload,
    LatentUpscaleMode,
    Lora,
    Progress,
    Sampler,
    Scheduler,
    SDModel,
    Txt2ImgPayload,
    Upscaler,
)

T = TypeVar("T")

_OOM_MARKERS = ("outofmemoryerror", "out of memory")


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
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=None),
            transport=transport,
        )
        # progress/interrupt must not wait behind a long generation: a second, short-timeout client.
        self._quick = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(min(read_timeout, 10.0), connect=connect_timeout),
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

    # --- plumbing ----------------------------------------------------------------------------------------

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
        try:
            return _adapter(shape).validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise MalformedResponse(
                f"the WebUI's answer to {path} is not what its API promises ({where}: {first['msg']})",
                status=response.status_code,
            ) from exc

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
        try:
            response = await client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise BackendUnreachable(f"the WebUI at {self.base_url} did not accept a connection") from exc
            raise BackendTimeout(f"the WebUI at {self.base_url} did not answer {path} in time") from exc
        except httpx.TransportError as exc:
            raise BackendUnreachable(
                f"the WebUI at {self.base_url} is unreachable or dropped the connection ({type(exc).__name__})"
            ) from exc
        if response.is_success:
            return response
        raise _error_for(response, path)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(shape: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter per response shape (building one is costly; the shapes are few)."""
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape]


def _error_for(response: httpx.Response, path: str) -> WebUIError:
    status = response.status_code
    message = _backend_message(response)
    if status == 422:
        return BackendRejected(f"the WebUI refused the request: {message}", status=status)
    if status >= 500 and any(marker in message.lower() for marker in _OOM_MARKERS):
        return OutOfMemory(f"the GPU ran out of memory: {message}", status=status)
    if 400 <= status < 500:
        return BackendRejected(f"the WebUI refused {path} ({status}): {message}", status=status)
    return BackendServerError(f"the WebUI failed on {path} ({status}): {message}", status=status)


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
