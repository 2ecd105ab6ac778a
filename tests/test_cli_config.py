"""The command line: --help, config precedence, clear errors, --once."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from accelscope.cli import main
from accelscope.config import ConfigError, resolve
from exporter.main import add_arguments


def _parser():
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


def test_precedence_flag_over_env_over_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exporter:\n  listen: 1.1.1.1:1\n  interval: 3\n  per_process: true\n"
                   "  sources: {nvml: {interval: 2}}\n")
    ns = resolve(_parser(), ["--config", str(cfg)], "exporter", env={})
    assert (ns.listen, ns.interval, ns.per_process) == ("1.1.1.1:1", 3.0, True)
    assert ns.config_sections == {"sources": {"nvml": {"interval": 2}}}
    ns = resolve(_parser(), ["--config", str(cfg)], "exporter", env={"ACCELSCOPE_EXPORTER_LISTEN": "2.2.2.2:2",
                                                                      "ACCELSCOPE_EXPORTER_PER_PROCESS": "false"})
    assert ns.listen == "2.2.2.2:2" and ns.per_process is False
    ns = resolve(_parser(), ["--config", str(cfg), "--listen", "3.3.3.3:3"], "exporter",
                 env={"ACCELSCOPE_EXPORTER_LISTEN": "2.2.2.2:2"})
    assert ns.listen == "3.3.3.3:3"


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("exporter:\n  lissten: x\n")
    with pytest.raises(ConfigError, match="unknown option.*lissten"):
        resolve(_parser(), ["--config", str(bad)], "exporter", env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve(_parser(), ["--config", str(tmp_path / "nope.yaml")], "exporter", env={})
    with pytest.raises(ConfigError, match="interval"):
        resolve(_parser(), [], "exporter", env={"ACCELSCOPE_EXPORTER_INTERVAL": "soon"})
    notyaml = tmp_path / "n.yaml"
    notyaml.write_text("exporter: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(_parser(), ["--config", str(notyaml)], "exporter", env={})


def test_unknown_source_exits_2_with_one_line(capsys):
    assert main(["exporter", "--source", "nvml,bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown source(s) bogus" in err and err.count("\n") == 1


def test_replay_without_path_is_a_clear_error(capsys):
    assert main(["exporter", "--source", "replay"]) == 2
    assert "--replay PATH" in capsys.readouterr().err


def test_help_names_env_vars():
    out = subprocess.run([sys.executable, "-m", "accelscope.cli", "exporter", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "ACCELSCOPE_EXPORTER_LISTEN" in out and "0.0.0.0:9417" in out


def test_once_prints_a_scrape(capsys):
    assert main(["exporter", "--source", "mock", "--once", "--node-name", "n1", "--log-level", "error"]) == 0
    out = capsys.readouterr().out
    assert 'hw_gpu_memory_limit_bytes{' in out and 'k8s_node_name="n1"' in out
