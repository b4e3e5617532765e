"""A throw-away certificate authority and broker certificate for a SASL_SSL Kafka, made with ``openssl``.

Why openssl's command line: it is on every Debian box (``scripts/install_system.sh``
needs nothing new), and Kafka reads PEM key stores directly
(``ssl.keystore.type=PEM``), so no Java key store is involved. The broker
certificate names ``127.0.0.1`` and ``localhost`` (the broker binds to loopback
only) and is good for both server and client authentication: the broker also
presents it on the controller listener, where mutual TLS identifies it as
``User:CN=kuzet-broker``.

Keys are written readable by the owner only. Production clusters bring their
own CA; this exists so tests and one-box installs run the same SASL_SSL path.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.services._proc import ServiceError

BROKER_CN = "kuzet-broker"
BROKER_PRINCIPAL = f"User:CN={BROKER_CN}"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path  # the CA certificate clients trust (``ssl_cafile``)
    keystore: Path  # the broker's key + certificate chain (PEM)


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise ServiceError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")


def ensure_tls(directory: Path) -> TlsFiles:
    """Create the CA and the broker key store in ``directory`` unless they exist; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(ca=directory / "ca.pem", keystore=directory / "broker-keystore.pem")
    if files.ca.exists() and files.keystore.exists():
        return files
    old = os.umask(0o077)
    try:
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "3650", "-subj", "/CN=kuzet-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
            "-subj", f"/CN={BROKER_CN}",
            cwd=directory,
        )  # fmt: skip
        (directory / "broker.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
        _openssl(
            "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "broker.crt", "-days", "825", "-sha256", "-extfile", "broker.ext",
            cwd=directory,
        )  # fmt: skip
        _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.p8", cwd=directory)
        chain = [(directory / name).read_text() for name in ("broker.p8", "broker.crt", "ca.pem")]
        files.keystore.write_text("".join(chain))
    finally:
        os.umask(old)
    return files
