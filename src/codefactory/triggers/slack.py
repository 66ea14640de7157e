"""Slack slash commands: `/factory <fix|bump|lint> <repository> [what to do]`.

Slack signs every request with the app's signing secret: `X-Slack-Signature` is
`v0=` + hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}`; the timestamp is in
seconds and dates the delivery. The body is form-encoded; `trigger_id` names the delivery.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from codefactory.triggers.errors import DeliveryInvalid, SignatureInvalid
from codefactory.triggers.labels import COMMAND_VERBS, command_kind
from codefactory.triggers.payload import clean, epoch, trigger
from codefactory.triggers.port import Delivery, HeaderDoc, ParsedDelivery
from codefactory.triggers.settings import TriggerSettings
from codefactory.triggers.signing import require_hex_hmac

USAGE = "usage: <command> fix|bump|lint <repository> [what to do]"


class SlackCommands:
    """Reads slash commands; the Slack user (`user_id`, in the signed body) is the sender."""

    name = "slack"
    media_type = "application/x-www-form-urlencoded"
    headers = (
        HeaderDoc(name="X-Slack-Signature", description="`v0=<hex HMAC-SHA256>`"),
        HeaderDoc(name="X-Slack-Request-Timestamp", description="Seconds since the epoch"),
    )

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        del settings

    def verify(self, delivery: Delivery, secret: str) -> None:
        timestamp = delivery.header("X-Slack-Request-Timestamp").strip()
        if not timestamp.isdigit():
            raise SignatureInvalid(self.name, "", "X-Slack-Request-Timestamp is missing")
        require_hex_hmac(
            delivery,
            header="X-Slack-Signature",
            secret=secret,
            message=b"v0:" + timestamp.encode("ascii") + b":" + delivery.body,
            prefix="v0=",
        )

    def read(self, delivery: Delivery) -> ParsedDelivery:
        form = _form(delivery)
        delivery_id = clean(form.get("trigger_id", ""), 200).strip()
        if not delivery_id:
            raise DeliveryInvalid(self.name, "", "`trigger_id` is missing")
        slash = clean(form.get("command", ""), 64)
        event = f"slash_command.{slash.lstrip('/') or 'unknown'}"
        sent_at = epoch(delivery.header("X-Slack-Request-Timestamp"))
        words = clean(form.get("text", "")).split(maxsplit=2)
        if len(words) < 2 or words[0].lower() not in COMMAND_VERBS:
            return ParsedDelivery(
                delivery_id=delivery_id, event=event, sent_at=sent_at, ignored=USAGE
            )
        user_id = clean(form.get("user_id", ""), 200).strip()
        if not user_id:
            raise DeliveryInvalid(self.name, delivery_id, "`user_id` is missing")
        user = clean(form.get("user_name", "")) or user_id
        request = words[2] if len(words) > 2 else f"{words[0]} requested from Slack"
        found = trigger(
            delivery,
            delivery_id=delivery_id,
            event=event,
            kind=command_kind(words[0].lower(), ()),
            external_id=f"slack:{delivery_id}",
            actor=user,
            repository=words[1],
            title=request.splitlines()[0][:200],
            body=request,
            sender_kind="slack",
            sender=user_id,
            attributes={
                "team": clean(form.get("team_domain", "")),
                "channel": clean(form.get("channel_name", "")),
                "response_url": clean(form.get("response_url", "")),
            },
        )
        return ParsedDelivery(delivery_id=delivery_id, event=event, sent_at=sent_at, trigger=found)


def _form(delivery: Delivery) -> dict[str, str]:
    try:
        parsed = parse_qs(delivery.body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as err:
        raise DeliveryInvalid(delivery.source, "", f"not a form-encoded body ({err})") from None
    return {key: values[0] for key, values in parsed.items() if values}
