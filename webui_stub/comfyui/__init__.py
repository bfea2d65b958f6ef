"""A stand-in ComfyUI (0.3.64's HTTP and WebSocket API) for tests and the demo; no GPU, deterministic images."""
