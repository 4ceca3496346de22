"""Pydantic's validation errors as one line a user can act on, naming the key as the
config file writes it (`accounts[work].window: <why>`)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """Pydantic's errors as `accounts[work].window: <why>`, naming the key."""
    lines = []
    for err in exc.errors()[:3]:
        key = _key_path(err["loc"], data)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against config.example.toml)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{key}: {msg}" if key else msg)
    more = exc.error_count() - len(lines)
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def _key_path(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            # A table of a list by its name, else by its place counted from 1 (`rules[1]` is
            # the first rule, as core/standards.py labels it in reports).
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            parts[-1] += f"[{name or item + (1 if isinstance(entry, dict) else 0)}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)
