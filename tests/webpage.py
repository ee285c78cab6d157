"""Test helpers for the web UI over HTTP: a cookie-keeping client and a small HTML reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    """One element: its tag, attributes and text content (descendants included)."""

    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class Page(HTMLParser):
    """Parses a page once; `find`/`one` select elements by tag and attribute values."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements of `tag` (any if None) whose attributes equal `attrs` (`class_` = class)."""
        wanted = {key.rstrip("_").replace("_", "-"): value for key, value in attrs.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag)
            and all(e.attrs.get(key) == value for key, value in wanted.items())
        ]

    def one(self, tag: str | None = None, **attrs: str) -> Element:
        """The only element matching; fails the test otherwise."""
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"expected one {tag} {attrs}, found {len(found)}"
        return found[0]

    def error_for(self, name: str) -> str:
        """The text of the error slot of form field `name` ("" when it is hidden)."""
        slot = self.one("p", data_error_for=name)
        return "" if "hidden" in slot.attrs else slot.text

    def value_of(self, name: str) -> str:
        """The value a form control shows."""
        control = self.one(name=name)
        if control.tag == "textarea":
            return "".join(control.parts).removeprefix("\n")
        if control.tag == "select":
            options = [e for e in self.find("option") if e in self._options_of(control)]
            return next(o.attrs["value"] for o in options if "selected" in o.attrs)
        return control.attrs.get("value", "")

    def _options_of(self, select: Element) -> list[Element]:
        start = self.elements.index(select)
        options = []
        for element in self.elements[start + 1 :]:
            if element.tag != "option":
                break
            options.append(element)
        return options

    @property
    def csrf(self) -> str:
        return self.one("meta", name="csrf-token").attrs["content"]


@dataclass
class Answer:
    status: int
    headers: Any
    text: str

    @property
    def page(self) -> Page:
        return Page(self.text)

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))


class WebClient:
    """A browser stand-in: keeps cookies, does not follow redirects."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **headers: str) -> Answer:
        async with self.http.get(
            self.base_url + path, allow_redirects=False, headers=headers
        ) as resp:
            return Answer(resp.status, resp.headers, await resp.text())

    async def post(
        self, path: str, data: dict[str, str] | list[tuple[str, str]], **headers: str
    ) -> Answer:
        async with self.http.post(
            self.base_url + path, data=data, allow_redirects=False, headers=headers
        ) as resp:
            return Answer(resp.status, resp.headers, await resp.text())

    async def sign_in(self, token: str) -> Answer:
        form = (await self.get("/login")).page
        nonce = form.one("input", name="csrf").attrs["value"]
        return await self.post("/login", {"token": token, "csrf": nonce, "next": "/"})

    async def csrf(self) -> str:
        return (await self.get("/settings/integrations")).page.csrf
