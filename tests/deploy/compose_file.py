"""`docker-compose.yml` as Docker Compose sees it, offline: the YAML (anchors and merge
keys resolved) with `${VAR}` interpolated from an env file (`.env.example` by default).

Interpolation follows the Compose Specification: `$$` is a literal `$`; `$VAR` and
`${VAR}` (empty when unset); `${VAR:-default}` / `${VAR-default}` (default when unset
or empty / unset); `${VAR:?message}` / `${VAR?message}` (error when unset or empty /
unset); `${VAR:+other}` / `${VAR+other}` (other when set and not empty / set).
Defaults and messages may hold further interpolations. Only the env file is read,
never the process environment, so the result does not depend on the shell.

An `environment` entry without a value is passed on from the env file when it is set
there and left out otherwise, as Compose does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = ROOT / "deploy" / "compose" / "compose-spec.json"

#: The four Kino services, each `python -m services.<name>` in the Kino image.
KINO_SERVICES = ("gateway", "auth", "catalog", "transcoder")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, or a malformed expression."""


@dataclass(frozen=True)
class Reference:
    """One `$VAR` / `${VAR…}` in the compose file."""

    name: str
    #: The operator after the name: "" (none), ":-", "-", ":?", "?", ":+" or "+".
    operator: str

    @property
    def required(self) -> bool:
        """Without a value in the env file this expression is an error or empty."""
        return self.operator in {"", ":?", "?"}


def read_env_file(path: Path) -> dict[str, str]:
    """The `KEY=value` pairs of a dotenv file (quotes and `\\n` escapes as Compose reads
    them; `${…}` inside values is not expanded). Keys without a value are left out."""
    values = dotenv_values(path, interpolate=False)
    return {key: value for key, value in values.items() if value is not None}


def interpolate(
    text: str, env: Mapping[str, str], references: list[Reference] | None = None
) -> str:
    """`text` with every expression replaced; each one met is appended to `references`."""
    result, end = _interpolate(text, 0, env, references, closing=False)
    assert end == len(text)
    return result


def _interpolate(
    text: str, start: int, env: Mapping[str, str], refs: list[Reference] | None, *, closing: bool
) -> tuple[str, int]:
    """Interpolate from `start` up to the end, or (`closing`) up to an unmatched `}`,
    whose index is returned."""
    out: list[str] = []
    i = start
    while i < len(text):
        char = text[i]
        if closing and char == "}":
            return "".join(out), i
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            value, i = _braced(text, i + 2, env, refs)
            out.append(value)
        elif (match := _NAME.match(text, i + 1)) is not None:
            name = match.group()
            if refs is not None:
                refs.append(Reference(name, ""))
            out.append(env.get(name, ""))
            i = match.end()
        else:
            raise InterpolationError(f"invalid interpolation at {text[i:]!r}")
    if closing:
        raise InterpolationError(f"unterminated ${{ in {text!r}")
    return "".join(out), i


def _braced(
    text: str, start: int, env: Mapping[str, str], refs: list[Reference] | None
) -> tuple[str, int]:
    """`${` at `start - 2`: the value, and the index after the closing `}`."""
    match = _NAME.match(text, start)
    if match is None:
        raise InterpolationError(f"invalid variable name in {text!r}")
    name, i = match.group(), match.end()
    operator = next((op for op in (":-", ":?", ":+", "-", "?", "+") if text.startswith(op, i)), "")
    if refs is not None:
        refs.append(Reference(name, operator))
    if not operator:
        if text[i : i + 1] != "}":
            raise InterpolationError(f"invalid interpolation ${{{text[start:]} in {text!r}")
        return env.get(name, ""), i + 1
    argument, close = _interpolate(text, i + len(operator), env, refs, closing=True)
    value = env.get(name)
    is_set, is_filled = value is not None, bool(value)
    if operator in {":-", "-"}:
        use_default = not is_filled if operator == ":-" else not is_set
        return (argument if use_default else value or ""), close + 1
    if operator in {":?", "?"}:
        if not (is_filled if operator == ":?" else is_set):
            raise InterpolationError(f"{name}: {argument or 'required variable is missing'}")
        return value or "", close + 1
    present = is_filled if operator == ":+" else is_set
    return (argument if present else ""), close + 1


def _walk(node: Any, env: Mapping[str, str], refs: list[Reference] | None) -> Any:
    """Interpolate every string value (never a key) of a parsed document."""
    if isinstance(node, dict):
        return {key: _walk(value, env, refs) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item, env, refs) for item in node]
    if isinstance(node, str):
        return interpolate(node, env, refs)
    return node


def load_raw(compose_file: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The parsed compose file before interpolation (anchors and merges resolved)."""
    document = yaml.safe_load(compose_file.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{compose_file.name} is not a mapping")
    return document


def references(compose_file: Path = COMPOSE_FILE) -> list[Reference]:
    """Every variable expression in the compose file (YAML merges repeat some)."""
    found: list[Reference] = []
    _walk(load_raw(compose_file), _Permissive(), found)
    return found


class _Permissive(Mapping[str, str]):
    """An environment in which every variable is set and not empty (no `:?` errors)."""

    def __getitem__(self, key: str) -> str:
        return "x"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def load_compose(env_file: Path = ENV_EXAMPLE, compose_file: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as Compose sees it with `env_file` as its `--env-file`."""
    document: dict[str, Any] = _walk(load_raw(compose_file), read_env_file(env_file), None)
    return document


def compose_commands(env_file: Path = ENV_EXAMPLE) -> dict[str, list[str]]:
    """Service → command (as a list) of the four Kino services."""
    services = load_compose(env_file)["services"]
    commands: dict[str, list[str]] = {}
    for name in KINO_SERVICES:
        command = services[name]["command"]
        commands[name] = command.split() if isinstance(command, str) else [str(c) for c in command]
    return commands


def compose_environment(service: str, env_file: Path = ENV_EXAMPLE) -> dict[str, str]:
    """The interpolated `environment` of one service, as the container gets it."""
    environment = load_compose(env_file)["services"][service].get("environment") or {}
    if isinstance(environment, list):
        pairs = [entry.split("=", 1) for entry in environment]
        environment = {pair[0]: (pair[1] if len(pair) == 2 else None) for pair in pairs}
    passed_on = read_env_file(env_file)
    resolved: dict[str, str] = {}
    for key, value in environment.items():
        if value is None:
            if key in passed_on:
                resolved[key] = passed_on[key]
        elif isinstance(value, bool):
            resolved[key] = "true" if value else "false"
        else:
            resolved[key] = str(value)
    return resolved
