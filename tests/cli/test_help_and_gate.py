"""What a new user meets first: help that starts fast and shows flags as flags, and the
``--fail-on`` verdict gate."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlsafety.audit import Check
from mlsafety.cli import app
from mlsafety.registry import CHECKS

runner = CliRunner()
GROUPS = [[], ["audit"], ["train"], ["corrupt"], ["info"], ["backdoor"], ["backdoor", "scan"],
          ["backdoor", "zoo", "build"], ["values"], ["values", "train"], ["values", "eval"], ["values", "score"],
          ["proxy"], ["proxy", "sweep"], ["proxy", "detect"], ["proxy", "overoptimization"], ["honesty"],
          ["honesty", "probe"], ["honesty", "eval"], ["emergence"], ["emergence", "analyze"],
          ["emergence", "testbed"]]
HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "transformers")


@pytest.mark.parametrize("group", [["--help"], ["audit", "--help"], ["info", "--help"], ["proxy", "sweep", "--help"],
                                   ["values", "--help"]], ids=" ".join)
def test_help_imports_no_heavy_library(group: list[str]) -> None:
    code = ("import sys; sys.argv = ['mlsafety', *sys.argv[1:]]\n"
            "from mlsafety.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code, *group], capture_output=True, text=True, timeout=120)
    assert "Usage:" in result.stdout, result.stderr
    assert "HEAVY []" in result.stdout, f"--help imported {result.stdout.rsplit('HEAVY', 1)[1].strip()}"


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "root")
def test_help_shows_flags_as_flags_and_no_type_labels(group: list[str]) -> None:
    result = runner.invoke(app, [*group, "--help"])
    assert result.exit_code == 0, result.output
    labels = re.findall(r"<(?:bool|str|int|float|path|list\[[^\]]*\])>", result.output)
    assert not labels, f"type labels in 'mlsafety {' '.join(group)} --help': {labels}"
    assert not re.search(r"--quick \S", result.output.replace("--quick  ", "--quick\n"))


class _ProbeFail(Check):
    name, title, hazard = "_probe_fail", "Probe that fails", "test"

    def run(self, context):
        return self.result("fail", "planted failure", next_step="nothing to do: a test probe")


class _ProbeWarn(Check):
    name, title, hazard = "_probe_warn", "Probe that warns", "test"

    def run(self, context):
        return self.result("warn", "planted warning")


@pytest.fixture()
def _probes():
    for probe in (_ProbeFail, _ProbeWarn):
        CHECKS.register(probe.name)(probe)
    yield
    for probe in (_ProbeFail, _ProbeWarn):
        CHECKS.unregister(probe.name)


@pytest.mark.usefixtures("_probes")
def test_fail_on_gates_on_verdicts(tmp_path) -> None:
    out = str(tmp_path / "report")
    base = ["audit", "--quick", "--out", out]
    default = runner.invoke(app, [*base, "--checks", "accuracy,_probe_fail"])
    assert default.exit_code == 0, "without a gate a failing section still exits 0, as documented"
    gated = runner.invoke(app, [*base, "--checks", "accuracy,_probe_fail", "--fail-on", "fail"])
    assert gated.exit_code == 1 and "_probe_fail: fail" in gated.stderr
    warn_only = runner.invoke(app, [*base, "--checks", "accuracy,_probe_warn", "--fail-on", "fail"])
    assert warn_only.exit_code == 0, "a warning does not trip --fail-on fail"
    strict = runner.invoke(app, [*base, "--checks", "accuracy,_probe_warn", "--fail-on", "warn"])
    assert strict.exit_code == 1 and "_probe_warn: warn" in strict.stderr
    bad = runner.invoke(app, [*base, "--fail-on", "error"])
    assert bad.exit_code == 2 and "--fail-on must be fail or warn" in bad.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    provenance = report["metadata"]["provenance"]
    assert len(provenance["model file sha256"]) == 64 and provenance["data fingerprint"]
