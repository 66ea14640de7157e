"""The skeleton's connectors: the ticket itself and the repository's file list."""

from __future__ import annotations

from codefactory.context.port import ContextItem
from codefactory.domain import TriggerEvent
from codefactory.sandbox.layout import system_tool
from codefactory.sandbox.port import Phase, Workspace

MAX_LISTED_FILES = 5000


class TicketConnector:
    """The trigger's own text: untrusted, it steers the engine but grants nothing."""

    name = "ticket"
    data_class = "internal"

    def fetch(self, trigger: TriggerEvent, workspace: Workspace) -> list[ContextItem]:
        text = f"{trigger.external_id}: {trigger.title}\n\n{trigger.body}".strip()
        return [
            ContextItem(
                connector=self.name, data_class=self.data_class, name=trigger.external_id, text=text
            )
        ]


class RepositoryFilesConnector:
    """The repository's file list, read inside the sandbox."""

    name = "repository-files"
    data_class = "internal"

    def fetch(self, trigger: TriggerEvent, workspace: Workspace) -> list[ContextItem]:
        listing = workspace.exec(
            [system_tool("find"), ".", "-type", "f", "-not", "-path", "./.*"],
            phase=Phase.ENGINE,
            timeout_s=60,
        )
        if not listing.ok:
            return []
        files = sorted(line.removeprefix("./") for line in listing.stdout.splitlines())
        return [
            ContextItem(
                connector=self.name,
                data_class=self.data_class,
                name="files",
                text="\n".join(files[:MAX_LISTED_FILES]),
            )
        ]
