"""Create the schema design's 21 MongoDB indexes (idempotent)."""

import asyncio
from typing import Any

from django.core.management.base import BaseCommand

from realtime.connections import current_settings, get_mongo
from realtime.documents import ensure_indexes


class Command(BaseCommand):
    help = "Create every MongoDB index of the schema design that is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        async def run() -> list[str]:
            client = get_mongo()
            try:
                return await ensure_indexes(client[current_settings().mongo_database])
            finally:
                await client.close()

        names = asyncio.run(run())
        self.stdout.write(f"[pms] MongoDB indexes ensured: {len(names)}")
