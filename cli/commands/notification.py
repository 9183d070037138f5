"""`mcagent notification`: cloud software notifications: add, request, accept, edit, remove, show, list."""

from __future__ import annotations

import argparse
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.cli import output
from mcagent.cli.commands import Context, group, leaf


def add(ctx: Context) -> None:
    args = ctx.args
    n = ctx.client.notifications.AddNotification(pb.AddNotificationRequest(
        abn=args.abn, dsp_abn=args.dsp_abn, software_ids=args.software_id, start_date=args.start,
        end_date=args.end or "", agencies=args.agency, accept_declaration=args.accept_declaration,
    ))
    ctx.out.result(n, output.notification_text(n))


def request(ctx: Context) -> None:
    args = ctx.args
    n = ctx.client.notifications.RequestNotification(pb.RequestNotificationRequest(
        dsp_abn=args.dsp_abn, abn=args.abn, software_ids=args.software_id, start_date=args.start,
        end_date=args.end or "", agencies=args.agency,
    ))
    ctx.out.result(n, output.notification_text(n) + "\npending until the business accepts it")


def accept(ctx: Context) -> None:
    n = ctx.client.notifications.AcceptNotification(
        pb.AcceptNotificationRequest(id=ctx.args.id, accept_declaration=ctx.args.accept_declaration)
    )
    ctx.out.result(n, output.notification_text(n))


def edit(ctx: Context) -> None:
    args = ctx.args
    n = ctx.client.notifications.EditNotification(pb.EditNotificationRequest(
        id=args.id, software_ids=args.software_id or [], start_date=args.start or "", end_date=args.end or "",
        no_end_date=args.no_end, accept_declaration=args.accept_declaration,
    ))
    ctx.out.result(n, output.notification_text(n))


def remove(ctx: Context) -> None:
    n = ctx.client.notifications.RemoveNotification(pb.RemoveNotificationRequest(id=ctx.args.id,
                                                                                 confirm=ctx.args.yes))
    ctx.out.result(n, f"removed notification {n.id}; it stays in the history")


def show(ctx: Context) -> None:
    n = ctx.client.notifications.GetNotification(pb.GetNotificationRequest(id=ctx.args.id))
    ctx.out.result(n, output.notification_text(n))


def list_notifications(ctx: Context) -> None:
    response = ctx.client.notifications.ListNotifications(
        pb.ListNotificationsRequest(abn=ctx.args.abn or "", status=ctx.args.status or "")
    )
    ctx.out.result(response, output.notifications_table(response))


def _fields(p: argparse.ArgumentParser, required: bool) -> None:
    """Software IDs and dates: required to add or request, optional to edit."""
    p.add_argument("--software-id", action="append", required=required, metavar="ID",
                   help="10-digit software ID from the provider (repeat for more)")
    p.add_argument("--start", required=required, metavar="YYYY-MM-DD", help="not before today")
    p.add_argument("--end", metavar="YYYY-MM-DD", help="default: no end date")


def register(groups: Any, common: argparse.ArgumentParser) -> None:
    verbs = group(groups, "notification", "cloud software notifications")
    p = leaf(verbs, "add", add, "notify agencies of a provider's software (PA or AA)", common)
    p.add_argument("--abn", required=True, help="your business")
    p.add_argument("--dsp-abn", required=True, help="the digital service provider")
    _fields(p, True)
    p.add_argument("--agency", action="append", required=True, help="agency to notify, e.g. osir")
    p.add_argument("--accept-declaration", action="store_true")
    p = leaf(verbs, "request", request, "as a provider, ask a client to notify", common)
    p.add_argument("--dsp-abn", required=True, help="your (the provider's) ABN")
    p.add_argument("--abn", required=True, help="the client business")
    _fields(p, True)
    p.add_argument("--agency", action="append", required=True)
    p = leaf(verbs, "accept", accept, "accept a pending request (the client's PA or AA)", common)
    p.add_argument("id")
    p.add_argument("--accept-declaration", action="store_true")
    p = leaf(verbs, "edit", edit, "change software IDs and dates (PA or AA)", common)
    p.add_argument("id")
    _fields(p, False)
    p.add_argument("--no-end", action="store_true", help="remove the end date")
    p.add_argument("--accept-declaration", action="store_true")
    p = leaf(verbs, "remove", remove, "end a notification; it stays in the history", common)
    p.add_argument("id")
    p.add_argument("--yes", action="store_true")
    p = leaf(verbs, "show", show, "one notification's details", common)
    p.add_argument("id")
    p = leaf(verbs, "list", list_notifications, "notifications, by business and status", common)
    p.add_argument("--abn")
    p.add_argument("--status", help="pending, active, removed or ended")
