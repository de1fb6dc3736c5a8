"""What a browser would post back from an admin change form: each field as the page
renders it (inputs, checked boxes, selected options, textareas), so a test changes one
field and submits the CRM's own form, inlines and all, as a user does."""

from __future__ import annotations

from html.parser import HTMLParser


class _Form(HTMLParser):
    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.data: dict[str, list[str]] = {}
        self._inside = False
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._inside = a.get("id") == self.form_id
        if not self._inside or (not a.get("name") and tag != "option"):
            return
        if tag == "input" and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") not in ("checkbox", "radio"):
                self.data.setdefault(a["name"], []).append(a.get("value", ""))
            elif "checked" in a:
                self.data.setdefault(a["name"], []).append(a.get("value", "on"))
        elif tag == "select":
            self._select = a["name"]
            self.data.setdefault(self._select, [])
        elif tag == "option" and self._select is not None and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = a["name"]
            self.data[self._textarea] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside and self._textarea is not None:
            self.data[self._textarea][-1] += data


def form_data(html: str, form_id: str) -> dict[str, list[str]]:
    """The fields of the form ``form_id`` in ``html``, as the browser would submit them."""
    form = _Form(form_id)
    form.feed(html)
    return form.data
