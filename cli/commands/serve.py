"""`mcagent serve`: run the daemon in the foreground (the one command that imports `agent`).

Every flag may also come from `--config FILE` (TOML, cli/configfile.py): the parser is marked
`config_file`, so a flag added here is a key there too. `mcagent config check FILE` runs this
handler up to the built Config and hands it to `args.config_check` instead of starting.
"""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.cli.commands import Context
from mcagent.cli.enums import BACKENDS
from mcagent.cli.errors import CommandFailed


def serve(ctx: Context) -> None:
    from mcagent.agent import log
    from mcagent.agent.config import Config, ConfigError
    from mcagent.agent.server.startup import forbid_core_dumps

    args = ctx.args
    log.configure(args.log_level, args.log_format)

    try:
        forbid_core_dumps()  # before a PIN, password or key is in memory
        config = Config.build(
            data_dir=args.data_dir,
            socket_path=args.socket,
            backend=args.keystore_backend,
            keystore_path=args.keystore,
            keystore_password_file=args.keystore_password_file,
            pkcs11_module=args.pkcs11_module,
            pkcs11_token=args.pkcs11_token,
            pkcs11_pin_file=args.pkcs11_pin_file,
            socket_mode=args.socket_mode,
            admin_uids=args.admin_uid,
            listen=args.listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            client_ca=args.client_ca,
            insecure_listen=args.insecure_listen,
            timezone=args.timezone,
            stores=args.store,
            crl_url=args.crl_url,
            certificate_policy=args.certificate_policy,
            crl_listen=args.crl_listen,
            max_connections=args.max_connections,
            max_connections_per_uid=args.max_connections_per_uid,
            idle_timeout=args.idle_timeout,
            grace_period=args.grace_period,
            metrics_listen=args.metrics_listen,
            workers=args.workers,
            database=args.database,
        )
        if getattr(args, "config_check", None):
            args.config_check(config)
            return
        if config.workers == 1:
            from mcagent.agent.server.server import AgentServer

            AgentServer(config).run_until_signalled()
        else:
            from mcagent.agent.server.supervisor import Supervisor  # loads neither grpc's core nor PKCS#11

            if Supervisor(config, config.workers).run() != 0:
                raise CommandFailed("the daemon stopped because a worker could not start (see the log above)")
    except ConfigError as exc:
        raise CommandFailed(str(exc)) from None


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    """`serve` takes the daemon's options, not the client's (`common` is not used)."""
    p = groups.add_parser("serve", help="run the daemon in the foreground")
    p.set_defaults(func=serve)
    p.config_file = True
    p.add_argument("--config", metavar="FILE", help="TOML file of these options (keys: the long names in "
                   "snake_case, e.g. keystore_backend = \"pkcs11\"); the command line overrides it")
    p.add_argument("--data-dir", help="data directory (default: per-user data home)/mcagent")
    p.add_argument("--database", metavar="URL", help="postgresql://USER@HOST/DB: records shared with other "
                   "instances (else env MCAGENT_DATABASE_URL; default: SQLite <data-dir>/mcagent.db); "
                   "the password from ~/.pgpass or PGPASSWORD, never here")
    p.add_argument("--socket", default=argparse.SUPPRESS,
                   help="Unix socket (default: $XDG_RUNTIME_DIR/mcagent/mcagent.sock, else <data-dir>/mcagent.sock)")
    p.add_argument("--keystore-backend", choices=list(BACKENDS), default="file", help="default key backend")
    p.add_argument("--keystore", help="default key store file (default: <data-dir>/keystore.mcks)")
    p.add_argument("--store", action="append", metavar="NAME=PATH",
                   help="another key store file that clients may choose by NAME (repeatable)")
    p.add_argument("--keystore-password-file", help="file holding the key store password "
                   "(else env MCAGENT_KEYSTORE_PASSWORD)")
    p.add_argument("--pkcs11-module", help="PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
    p.add_argument("--pkcs11-token", help="label of the token holding the keys")
    p.add_argument("--pkcs11-pin-file", help="file holding the token's user PIN (else env MCAGENT_PKCS11_PIN)")
    p.add_argument("--socket-mode", default="0600", help="Unix socket permissions, octal (default 0600)")
    p.add_argument("--admin-uid", type=int, action="append", help="another uid that is the local administrator")
    p.add_argument("--listen", help="HOST:PORT for TCP with mutual TLS (needs --tls-cert, --tls-key, --client-ca)")
    p.add_argument("--tls-cert", default=argparse.SUPPRESS, help="server certificate chain (PEM)")
    p.add_argument("--tls-key", default=argparse.SUPPRESS, help="server private key (PEM)")
    p.add_argument("--client-ca", help="CA whose client certificates are accepted (PEM)")
    p.add_argument("--insecure-listen", help="HOST:PORT for plain TCP without TLS: development only")
    p.add_argument("--timezone", help="where 'today' is for notification dates (default Australia/Sydney)")
    p.add_argument("--crl-url", help="http(s) URL of the CRL, written into every leaf the agent issues "
                   "(cRLDistributionPoints)")
    p.add_argument("--certificate-policy", metavar="OID",
                   help="policy OID written into every leaf the agent issues (certificatePolicies)")
    p.add_argument("--crl-listen", metavar="HOST:PORT", help="serve the CRL over plain HTTP at /crl")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="Unix-socket connections at once, all uids together (default 1024)")
    p.add_argument("--max-connections-per-uid", type=int, metavar="N",
                   help="Unix-socket connections at once from one uid (default 64)")
    p.add_argument("--idle-timeout", type=int, metavar="SECONDS",
                   help="close a Unix-socket connection idle this long (default 300)")
    p.add_argument("--grace-period", type=float, metavar="SECONDS",
                   help="on SIGTERM, how long calls in flight may take to finish (default 30)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics over plain HTTP at /metrics (opt-in; with --workers N, "
                   "worker k on PORT+k-1)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes sharing the sockets and the data (default 1: one process)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="text: one escaped line per record; json: one object per line (default text)")
