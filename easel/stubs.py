"""``easel stub-webui``: run the stand-in for one server flavour."""

from __future__ import annotations


def run_stub(flavor: str, host: str, port: int, *, step_ms: float, load_ms: float) -> None:
    if flavor == "comfyui":
        from webui_stub.comfyui.engine import ComfyConfig
        from webui_stub.comfyui.server import run

        run(host, port, ComfyConfig(step_ms=step_ms, load_ms=load_ms))
        return
    from webui_stub import flavours
    from webui_stub.engine import StubConfig
    from webui_stub.server import run as run_a1111

    run_a1111(host, port, StubConfig(step_ms=step_ms, load_ms=load_ms, flavour=flavours.named(flavor)))
