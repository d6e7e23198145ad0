"""CLI: `ecdflow register` and `ecdflow promote` (aliases challenger/champion, the gate)."""

from __future__ import annotations

import click

from ecdflow.cli.common import settings

TARGET_HELP = "bulk, shear, K_VRH or G_VRH (default: every configured target)."


def _targets(s, target: str | None) -> list[str]:
    from ecdflow.registry import resolve_target

    return [resolve_target(target)] if target else list(s.targets)


@click.command("register")
@click.option("--target", default=None, help=TARGET_HELP)
@click.option("--pipeline-run-id", default=None, help="Pipeline run (default: latest).")
@click.option("--pretrained", is_flag=True,
              help="Import the models shipped with ecdflow (ecdflow/pretrained/) instead.")
@click.pass_context
def register(ctx: click.Context, target: str | None, pipeline_run_id: str | None,
             pretrained: bool) -> None:
    """Register the best CV model type of a pipeline run (its fold ensemble, with an
    uncertainty) as a new version with alias 'challenger'; with --pretrained, the shipped
    model of each target (its model card becomes the version's description)."""
    from ecdflow.evaluate import latest_pipeline_run_id
    from ecdflow.registry import register_best

    s = settings(ctx)
    if pretrained:
        from ecdflow.pretrained import TAG_PRETRAINED, import_to_registry

        for t in _targets(s, target):
            mv = import_to_registry(s, t)
            click.echo(f"{mv.name} v{mv.version}: {mv.tags.get(TAG_PRETRAINED)} (shipped, CV "
                       f"{s.registry.metric} {mv.tags.get(f'ecdflow.cv_{s.registry.metric}_gpa')}"
                       " GPa) -> alias challenger")
        return
    pid = pipeline_run_id or latest_pipeline_run_id(s)
    for t in _targets(s, target):
        mv = register_best(s, pid, t)
        click.echo(f"{mv.name} v{mv.version}: {mv.tags.get('ecdflow.model')} "
                   f"(CV {s.registry.metric} {mv.tags.get(f'ecdflow.cv_{s.registry.metric}_gpa')}"
                   f" GPa) -> alias challenger")


@click.command("promote")
@click.option("--target", default=None, help=TARGET_HELP)
@click.option("--force", is_flag=True, help="Skip the gate (needs --reason; recorded).")
@click.option("--reason", default=None, help="Why (recorded on the version and in the history).")
@click.option("--rollback", is_flag=True, help="Restore the previous champion instead.")
@click.pass_context
def promote(ctx: click.Context, target: str | None, force: bool, reason: str | None,
            rollback: bool) -> None:
    """Move alias 'champion' to the challenger through the gate: it must beat the champion
    (same data version, registry.metric, by registry.margin) and the RF+Magpie baseline."""
    from ecdflow import registry

    s = settings(ctx)
    for t in _targets(s, target):
        if rollback:
            ev = registry.rollback(s, t)
            click.echo(f"{ev['name']}: champion v{ev['previous_champion']} -> v{ev['version']}")
        else:
            ev = registry.promote(s, t, force=force, reason=reason)
            prev = f"v{ev['previous_champion']}" if ev["previous_champion"] else "none"
            click.echo(f"{ev['name']}: champion {prev} -> v{ev['version']} "
                       f"({'forced: ' + ev['reason'] if ev['forced'] else 'gate passed'})")
