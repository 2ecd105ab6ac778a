"""Generated files are committed and must match their sources."""

from pathlib import Path

from scripts.generate import generate_all

ROOT = Path(__file__).resolve().parent.parent


def test_generated_files_are_up_to_date():
    stale = [rel for rel, text in generate_all().items()
             if not (ROOT / rel).exists() or (ROOT / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated files {stale}: run 'make generate' and commit the result"


def test_metrics_doc_lists_every_family():
    from exporter import schema
    from scheduler_events import schema as collector_schema

    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for spec in schema.ALL + collector_schema.ALL:
        assert f"`{spec.name}`" in doc
