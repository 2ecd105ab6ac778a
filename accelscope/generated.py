"""Shared helpers for generated files (``make generate``).

Generators are pure functions returning ``{repo-relative path: text}``;
:func:`write_files` writes the ones whose content changed, and
:func:`dump_yaml` is the one YAML style every generated rule file uses.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_files(files: dict[str, str], label: str = "generate", root: Path = ROOT) -> int:
    """Write each file whose content differs; print what changed; return the count."""
    changed = 0
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed += 1
            print(f"wrote {rel}")
    print(f"{label}: {changed} file(s) changed")
    return changed


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (PromQL), no line folding, no aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


def dump_yaml(data: object) -> str:
    """YAML text: block scalars for multi-line strings, keys in insertion order, no folding."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100_000,
                     allow_unicode=True)
