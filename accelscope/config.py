"""Configuration: command-line flags, environment variables and a YAML file.

Precedence, highest first: a flag on the command line, the environment
variable ``ACCELSCOPE_<AGENT>_<OPTION>`` (for example
``ACCELSCOPE_EXPORTER_LISTEN``), the agent's section of the ``--config``
YAML file (``exporter: {listen: ...}``), the built-in default.  Option names
in the file and the environment use the flag's long name with ``-`` turned
into ``_``.  Every flag's ``--help`` line names its variable.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml


#: top-level sections of the config file, one per agent
KNOWN_SECTIONS = ("exporter", "collector")


class ConfigError(ValueError):
    """A configuration file or value that can't be used; the message says why."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; returns ``{}`` for an empty file.

    Raises ConfigError when the file is missing, unreadable, not YAML or not
    a mapping.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def env_name(agent: str, dest: str) -> str:
    return f"ACCELSCOPE_{agent.upper()}_{dest.upper()}"


def annotate_help(parser: argparse.ArgumentParser, agent: str) -> None:
    """Append ``(env ACCELSCOPE_<AGENT>_<OPT>; default X)`` to each option's help."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public iterator
        if not action.option_strings or action.dest in ("help", "config"):
            continue
        extra = f"env {env_name(agent, action.dest)}"
        if action.default not in (None, argparse.SUPPRESS, False):
            extra += "; default %(default)s"
        action.help = f"{action.help or ''} ({extra})".strip()


def resolve(parser: argparse.ArgumentParser, argv: list[str] | None, agent: str,
            env: dict[str, str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with file and environment defaults applied.

    Raises ConfigError on an unknown key in the file's agent section or a
    value of the wrong type.
    """
    env = os.environ if env is None else env
    pre, _ = parser.parse_known_args(argv)
    section: dict[str, Any] = {}
    config_path = getattr(pre, "config", None) or env.get(f"ACCELSCOPE_{agent.upper()}_CONFIG")
    if config_path:
        data = load_yaml(config_path)
        stray = [k for k in data if k not in KNOWN_SECTIONS]
        if stray:
            raise ConfigError(f"config file {config_path}: unknown section(s) {', '.join(map(str, stray))}; "
                              f"valid: {', '.join(KNOWN_SECTIONS)}")
        section = data.get(agent, {}) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"config file {config_path}: section '{agent}' must be a mapping")
    actions = {a.dest: a for a in parser._actions if a.option_strings}  # noqa: SLF001
    known = {d for d in actions if d not in ("help",)}
    extra_sections = {k: v for k, v in section.items() if k not in known and isinstance(v, (dict, list))}
    unknown = [k for k in section if k not in known and k not in extra_sections]
    if unknown:
        raise ConfigError(f"config file {config_path}: unknown option(s) {', '.join(sorted(unknown))} in "
                          f"section '{agent}'; valid: {', '.join(sorted(known - {'config'}))}")
    defaults: dict[str, Any] = {}
    for dest, action in actions.items():
        value: Any = None
        if dest in section:
            value = section[dest]
        if env_name(agent, dest) in env:
            value = env[env_name(agent, dest)]
        if value is None:
            continue
        defaults[dest] = _coerce(action, value, dest)
    parser.set_defaults(**defaults)
    ns = parser.parse_args(argv)
    ns.config_sections = extra_sections
    return ns


def _coerce(action: argparse.Action, value: Any, dest: str) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"option {dest}: expected true or false, got {value!r}")
    if action.type is not None and isinstance(value, str):
        try:
            return action.type(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"option {dest}: {exc}") from exc
    if action.type in (int, float) and not isinstance(value, (int, float)):
        raise ConfigError(f"option {dest}: expected a number, got {value!r}")
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value
