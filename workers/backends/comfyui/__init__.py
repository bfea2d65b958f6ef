"""The ComfyUI backend: built-in API-format workflows, the WebSocket for progress, the history for results."""
