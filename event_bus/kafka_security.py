"""How every Kafka client of Kuzet authenticates: SASL/SCRAM over TLS, or plaintext on one box.

Why one place: a producer, a consumer, an admin client and the registry CLI
must all present the same principal the ACLs (:mod:`event_bus.acls`) are
written for, and the password is a secret reference resolved only here, when
a client is built, never stored on an object that could be logged.

Clients built from a :class:`~core.config.KafkaConfig` use
:func:`client_settings`; clients built from a bare bootstrap address (the
registry CLI, the assignment consumer, topic administration) use
:func:`env_settings`, which reads the same ``KUZET_BUS__KAFKA__*`` variables a
worker's configuration does, so one environment configures a whole process.
"""

from __future__ import annotations

import os
from typing import Any

from core.config import ConfigError, KafkaConfig, resolve_secret

_ENV = "KUZET_BUS__KAFKA__"
_FIELDS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile")


def client_settings(cfg: KafkaConfig) -> dict[str, Any]:
    """kafka-python keyword arguments for ``cfg``'s security settings (empty for PLAINTEXT)."""
    if cfg.security_protocol == "PLAINTEXT":
        return {}
    out: dict[str, Any] = {"security_protocol": cfg.security_protocol, "ssl_check_hostname": True}
    if cfg.ssl_cafile is not None:
        out["ssl_cafile"] = str(cfg.ssl_cafile)
    if cfg.security_protocol == "SASL_SSL":
        assert cfg.sasl_password is not None  # KafkaConfig refuses SASL_SSL without it
        out |= {
            "sasl_mechanism": cfg.sasl_mechanism,
            "sasl_plain_username": cfg.sasl_username,
            "sasl_plain_password": resolve_secret(cfg.sasl_password).get_secret_value(),
        }
    return out


def env_fields() -> dict[str, str]:
    """The :class:`~core.config.KafkaConfig` security fields this process's ``KUZET_BUS__KAFKA__*`` variables set
    (for a command that builds its config from options, so its publisher authenticates as its subscriber does)."""
    return {f: os.environ[_ENV + f.upper()] for f in _FIELDS if _ENV + f.upper() in os.environ}


def env_settings() -> dict[str, Any]:
    """:func:`client_settings` for the ``KUZET_BUS__KAFKA__*`` security variables of this process."""
    data = env_fields()
    if not data:
        return {}
    try:
        cfg = KafkaConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"Kafka security settings from the environment: {exc}") from None
    return client_settings(cfg)
