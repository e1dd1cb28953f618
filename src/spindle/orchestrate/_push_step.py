"""The push step: refuse ungated and older versions, validate the serving infra, copy the
version into the model repository, and route it and move the production alias as one recorded
deployment (see ``_deploy``). The copy is verified against the registry's record of the version
and made after the push's intent is recorded, so a rerun after a crash completes the same push."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core import (
    Deployment,
    FeatureError,
    GateBlocked,
    Progress,
    atomic_write_json,
    sha256_json,
)
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._deploy import deploy, registered, repository
from spindle.orchestrate._infra_validation import InfraReport, infra_validate
from spindle.orchestrate._model_common import LoadedConfig
from spindle.orchestrate._policy import check_push_access
from spindle.orchestrate._version_store import version_folder
from spindle.serve import InstalledVersion, install_version, push_routing, read_routing

if TYPE_CHECKING:
    from spindle.registry import ArtifactRecord


def _version_date(ctx: Context, model: str, version: int) -> str:
    return ctx.store.get_version(model, version).date or ""


def older_than_production(ctx: Context, model: str, version: int) -> str | None:
    """Why ``version`` may not replace production (its day is older), or None when it may.

    A version's date is the day it was trained for (its training window ends the day before);
    a version for an earlier day than production's holds older data.
    """
    production = production_version(ctx, model)
    if production is None or production == version:
        return None
    ours, theirs = _version_date(ctx, model, version), _version_date(ctx, model, production)
    if not ours or not theirs or ours >= theirs:
        return None
    return (
        f"{model}@{version} was trained for {ours}, older than production {model}@{production} "
        f"(trained for {theirs}): not pushed, production stays {production}. "
        "Use --allow-older (allow_older=True) to replace production with older data"
    )


def checked_infra(
    ctx: Context,
    model: str,
    version: int,
    progress: Progress | None = None,
    overrides: list[str] | None = None,
    config: LoadedConfig | None = None,
) -> InfraReport:
    """Infra validation of ``model@version``, run once per version and ``--set`` overrides
    (the report is kept as JSON next to the evaluations; a version is immutable, so a passing
    report stays valid for the same serving budgets). ``config``: the run's config, when it
    was loaded already (its overrides key the report)."""
    keys = list(config.overrides) if config is not None else overrides or []
    suffix = f"-{sha256_json(sorted(keys))[:8]}" if keys else ""
    path = ctx.workspace.artifacts_dir / "evaluations" / model / f"{version}-infra{suffix}.json"
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded.get("passed"):
            recorded["failures"] = tuple(recorded.get("failures", ()))
            return InfraReport(**recorded)
    report = infra_validate(
        ctx, model, version, overrides=overrides, progress=progress, config=config
    )
    atomic_write_json(path, report.to_dict())
    return report


def _admit(
    ctx: Context,
    model: str,
    version: int,
    weight: float | None,
    force: bool,
    reason: str | None,
    infra: bool,
    allow_older: bool,
    progress: Progress | None,
    overrides: list[str] | None = None,
    config: LoadedConfig | None = None,
) -> tuple[ArtifactRecord | None, str, str]:
    """The checks before a push: its evaluation record, the actor and the audit reason.

    Raises:
        GateBlocked: the push is refused (see ``push``).
        FeatureError: the version reads a restricted feature its team may not use.
    """
    ctx.store.get_version(model, version)  # an unknown version says so (not 'never evaluated')
    check_push_access(ctx, model, version)  # first, and not overridable by --force
    record = ctx.store.latest_artifact("evaluation", model=model, version=version)
    decision = None if record is None else record.properties.get("decision")
    if decision != "pass" and not force:
        why = (
            "it was never evaluated"
            if record is None
            else "; ".join(record.properties.get("reasons", [])) or "blocked"
        )
        raise GateBlocked(
            f"{model}@{version} may not be pushed: {why}. "
            "Use `spindle push --force --reason TEXT` to override (audited)."
        )
    if force and not reason:
        raise GateBlocked(
            "--force needs --reason TEXT: forced pushes are recorded in the audit trail"
        )
    actor = "spindle push --force" if force else "spindle push"
    why = f"forced: {reason}" if force else f"gate passed ({decision})"
    older = None if allow_older else older_than_production(ctx, model, version)
    if older is not None:
        current = read_routing(repository(ctx), model)
        if current.main != version and push_routing(current, version, weight).main == version:
            ctx.store.refuse_deployment(
                model,
                {version: 1.0 if weight is None else weight},
                actor=actor,
                reason=why,
                detail=older,
            )
            raise GateBlocked(older)
    if infra:
        report = checked_infra(ctx, model, version, progress, overrides, config)
        if not report.passed and not force:
            raise GateBlocked(
                f"{model}@{version} failed infra validation: {'; '.join(report.failures)}. "
                "Fix it, or use `spindle push --force --reason TEXT` to override (audited)."
            )
    return record, actor, why


def push(
    ctx: Context,
    model: str,
    version: int,
    *,
    weight: float | None = None,
    force: bool = False,
    reason: str | None = None,
    infra: bool = True,
    allow_older: bool = False,
    progress: Progress | None = None,
    overrides: list[str] | None = None,
    config: LoadedConfig | None = None,
) -> Deployment:
    """Push a gated version to the model repository and make it production.

    The routing change and the ``production`` alias move are one recorded deployment: the
    alias always names the version with the most traffic. A version trained for an earlier day
    than production's is refused (and the refusal recorded) when it would take the most
    traffic, unless ``allow_older``.

    Before the push, unless ``infra`` is False, infra validation serves the version in a canary
    process (``checked_infra``): scores must match the training-time model, p99 latency and
    peak RSS must fit the config's serving budget. ``force`` with a ``reason`` overrides a
    blocked gate or failed infra validation; the reason is recorded on the deployment and in
    the alias history (the audit trail). ``progress`` hears the infra validation's phases.
    ``overrides`` are the run's ``--set`` overrides of the model config (its serving budgets
    judge the infra validation), the same the run trained and evaluated with; ``config`` the
    run's config when it was loaded already (a daily run loads it once for every step).

    A refusal is recorded as a failed ``push`` run (counted in ``spindle_step_failures_total``).

    Raises:
        NotFound: the model or version does not exist.
        GateBlocked: no passing evaluation, or failed infra validation, and ``force`` is not
            set with a reason; or the version is older than production and would take the
            most traffic while ``allow_older`` is not set (recorded as a refused deployment).
        FeatureError: the version reads a restricted feature its model's team may not use
            (its access policy as it is now; ``force`` does not override it).
    """
    try:
        record, actor, why = _admit(
            ctx,
            model,
            version,
            weight,
            force,
            reason,
            infra,
            allow_older,
            progress,
            overrides,
            config,
        )
    except (GateBlocked, FeatureError) as exc:  # a refused push is a failed run
        ctx.runner.record_refusal("push", exc, model=model, params={"version": version})
        raise
    source = version_folder(ctx, model, version)

    def run() -> Deployment:
        expected = registered(ctx)(model, version)  # what training recorded for the version
        installed: list[InstalledVersion] = []

        def copy() -> None:  # verified against the registry, idempotent, under the lock
            installed.append(install_version(source, repository(ctx), registered=expected))

        deploy(
            ctx,
            model,
            lambda current: push_routing(current, version, weight),
            op="push",
            args={"version": version, "weight": None if weight is None else float(weight)},
            actor=actor,
            reason=f"{why}; older data allowed" if allow_older else why,
            prepare=copy,
        )
        result, repo = installed[-1], repository(ctx)
        return Deployment(
            model,
            version,
            str(result.path) if isinstance(repo, Path) else repo.version_url(model, version),
            sha256_json(result.files),
            1.0 if weight is None else weight,
            reason if force else None,
        )

    inputs = [f"model:{model}@{version}"] + ([record.id] if record is not None else [])
    outcome = ctx.runner.run(
        "push",
        run,
        identity={"version": version, "weight": weight, "force": force}
        | ({"allow_older": True} if allow_older else {}),
        model=model,
        inputs=inputs,
    )
    deployment: Deployment = outcome.value
    return deployment
