"""The project's Dedalus stand-in, as the tests drive it: its script of behaviours and its request log."""

from __future__ import annotations

from typing import Any

import httpx


class StandIn:
    """The project's Dedalus stand-in running as a subprocess, with its test controls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def requests(self) -> list[dict[str, Any]]:
        """Every request it received since the last reset (completions, OCR, embeddings), oldest first."""
        return self.http.get("/_standin/requests").json()

    def script(self, *behaviours: dict[str, Any]) -> None:
        """Queue behaviours for the next requests, one each."""
        self.http.post("/_standin/script", json=list(behaviours)).raise_for_status()

    def title_script(self, *behaviours: dict[str, Any]) -> None:
        """Queue behaviours for the next title requests, one each."""
        self.http.post("/_standin/script?for=title", json=list(behaviours)).raise_for_status()

    def embeddings_script(self, *behaviours: dict[str, Any]) -> None:
        """Queue behaviours for the next embeddings requests, one each."""
        self.http.post("/_standin/script?for=embeddings", json=list(behaviours)).raise_for_status()

    def reset(self) -> None:
        self.http.delete("/_standin/script").raise_for_status()
        self.http.delete("/_standin/requests").raise_for_status()
