"""Deliberately broken Visio clients: the connector's requests altered on the wire, to see the sandbox refuse them."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx


class FormEncodedTokens(httpx.BaseTransport):
    """The connector as it was before Meet v1.27.0: its token request re-sent as a form body (v1.27.0 answers 415)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/application/token/"):
            fields = json.loads(request.content)
            headers = {name: value for name, value in request.headers.items()
                       if name.lower() not in ("content-type", "content-length")}
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = httpx.Request("POST", request.url, headers=headers, content=urlencode(fields).encode(),
                                    extensions=request.extensions)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
