"""Signed thumbnail links: the job page (which checked the owner once) signs each thumbnail URL for its viewer, so the
browser's thousand thumbnail requests skip the database; a request without a valid signature for *this* viewer is
checked against the store like any other."""

from __future__ import annotations

import hashlib
import hmac

from web.auth import Viewer


class ThumbSigner:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"easel-thumbnails:" + secret.encode()).digest()

    def sign(self, viewer: Viewer, image_id: str) -> str:
        message = f"{viewer.owner}\n{image_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:24]

    def valid(self, viewer: Viewer, image_id: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(viewer, image_id), signature)
