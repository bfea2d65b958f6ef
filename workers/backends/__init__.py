"""Generation backends: one seam (:mod:`workers.backends.base`), the A1111 family (:mod:`.a1111`), ComfyUI
(:mod:`.comfyui`), and :func:`workers.backends.detect.open_backend` to pick one for a URL."""
