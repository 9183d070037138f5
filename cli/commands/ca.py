"""`mcagent ca`: the agent's own issuing CA: create it, print its certificates and CRL."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf


def init(ctx: Context) -> None:
    response = ctx.client.ca.InitCA(pb.InitCARequest())
    ctx.out.result(response, output.pem(response.root_pem))


def certificate(ctx: Context) -> None:
    response = ctx.client.ca.GetCACertificates(pb.GetCACertificatesRequest())
    ctx.out.result(response, output.pem(response.issuing_pem if ctx.args.issuing else response.root_pem))


def crl(ctx: Context) -> None:
    response = ctx.client.ca.GetCRL(pb.GetCRLRequest())
    ctx.out.result(response, output.pem(response.pem))


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "ca", "the agent's issuing CA")
    leaf(verbs, "init", init, "create the CA now (it is also created on first start)", common)
    p = leaf(verbs, "certificate", certificate, "the root CA certificate (PEM)", common)
    p.add_argument("--issuing", action="store_true", help="the issuing CA certificate instead")
    leaf(verbs, "crl", crl, "a fresh CRL of the issuing CA (PEM)", common)
