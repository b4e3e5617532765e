"""``kuzet kafka-acls``: apply the ACL recipe of :mod:`event_bus.acls` to a cluster, as its admin principal.

Why a command: a cluster the deploy files start (compose) or name (Kubernetes) needs the same bindings the
test broker gets, from the same recipe, not a hand-written copy in shell. The admin's SASL/TLS settings
come from the ``KUZET_BUS__KAFKA__*`` variables (:func:`event_bus.kafka_security.env_settings`); applying
twice is harmless (the broker keeps one copy of an identical binding).
"""

from __future__ import annotations

from typing import Annotated

import typer


def kafka_acls(
    bootstrap: Annotated[
        str,
        typer.Option(envvar="KUZET_BUS__KAFKA__BOOTSTRAP_SERVERS", help="Kafka bootstrap, host:port[,...]"),
    ] = "127.0.0.1:9092",
    principal: Annotated[
        list[str] | None,
        typer.Option(help="ROLE=USER, to name a service's SCRAM user (default: kuzet-ROLE for each role)"),
    ] = None,
) -> None:
    """Grant each service principal what event_bus/acls.py lists (only admin writes the camera registry)."""
    from event_bus.acls import ROLES, apply_acls
    from event_bus.kafka_security import env_settings

    users = {role: f"kuzet-{role}" for role in ROLES}
    for item in principal or []:
        role, sep, user = item.partition("=")
        if not sep or role not in ROLES or not user:
            raise typer.BadParameter(f"--principal takes ROLE=USER with ROLE one of {', '.join(ROLES)}")
        users[role] = user
    try:
        n = apply_acls(bootstrap, env_settings(), users)
    except Exception as exc:  # a CLI reports any failure (broker, auth) as one line and a non-zero exit
        typer.echo(f"error: ACLs not applied on {bootstrap}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(f"applied {n} ACL bindings on {bootstrap} for {', '.join(sorted(users.values()))}")
