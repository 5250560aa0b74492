"""The heavy generators on Ray give what the local executor gives: the backdoor shadow-model
zoo (one model per shard) and the value-model ensemble (one member per shard), also through
``values eval``, whose Goodhart experiment fits one."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

runner = CliRunner()


def _zoo_build(root, *extra: str):
    from mlsafety.cli import app

    args = ["backdoor", "zoo", "build", "--data", "digits", "--width", "4", "--n-train", "300", "--epochs", "1",
            "--n-clean", "1", "--n-backdoored", "2", "--root", str(root), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def _models(root):
    from mlsafety.monitoring.backdoor.zoo import find_zoo

    zoo = find_zoo("small_cnn", "digits", root)
    assert zoo is not None
    return {row["name"]: (row, classifier) for row, classifier in zoo.load_models()}


def test_zoo_built_on_ray_equals_the_local_zoo(ray_session, tmp_path) -> None:
    torch.set_num_threads(1)
    _zoo_build(tmp_path / "local")
    _zoo_build(tmp_path / "ray", "--executor", "ray", "--workers", "2")
    local, remote = _models(tmp_path / "local"), _models(tmp_path / "ray")
    assert sorted(local) == sorted(remote) and len(local) == 3
    for name, (row, classifier) in local.items():
        other_row, other = remote[name]
        timing = {"training_seconds"}
        assert {k: v for k, v in row.items() if k not in timing} == {
            k: v for k, v in other_row.items() if k not in timing}
        ours, theirs = classifier.module.state_dict(), other.module.state_dict()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name


def test_zoo_build_refuses_workers_below_one(tmp_path) -> None:
    from mlsafety.cli import app

    result = runner.invoke(app, ["backdoor", "zoo", "build", "--workers", "0", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "--workers" in result.output


def test_ensemble_fitted_on_ray_equals_the_local_ensemble(ray_session) -> None:
    from mlsafety.alignment.values import UtilityEnsemble, make_synthetic_preferences
    from mlsafety.execution import RayExecutor

    torch.set_num_threads(1)
    data = make_synthetic_preferences(200, dim=8, seed=5)
    local = UtilityEnsemble(n_members=3, aggregate="mean_minus_std", seed=4).fit_pairs(data.better, data.worse)
    remote = UtilityEnsemble(n_members=3, aggregate="mean_minus_std", seed=4).fit_pairs(
        data.better, data.worse, executor=RayExecutor(workers=2))
    assert remote.offsets_ == local.offsets_
    assert torch.equal(remote.member_utilities(data.items), local.member_utilities(data.items))
    # the members differ (each its own bootstrap sample and seed), so equality above is not vacuous
    members = local.member_utilities(data.items)
    assert not torch.allclose(members[0], members[1])


def test_values_eval_on_ray_writes_the_local_report(ray_session, vader_env) -> None:
    import json

    from mlsafety.cli import app

    torch.set_num_threads(1)
    model = vader_env / "u.safetensors"
    trained = runner.invoke(app, ["values", "train", "--encoder", "hashing", "--n-pairs", "800", "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    reports = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--workers", "2"])):
        result = runner.invoke(app, ["values", "eval", "--model", str(model), "--out", str(vader_env / name),
                                     "--quick", *extra])
        assert result.exit_code == 0, result.output
        checks = json.loads((vader_env / name / "report.json").read_text())["checks"]
        reports[name] = {check["name"]: check["metrics"] for check in checks}
    assert "goodhart" in reports["local"]
    assert reports["ray"] == reports["local"]
