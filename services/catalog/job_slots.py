"""Fair share of the transcoder: each owner has at most `per_owner` media jobs sent to
it at once (hosting and trimming together); the others wait in the database, held, and
are sent oldest first as that owner's jobs end. One owner's backlog therefore delays
another owner's job by at most what the workers are running.

A slot is a document whose `_id` is `<owner>:<n>` with n < `per_owner`: the unique id
makes taking one atomic across catalog replicas, without transactions. A slot names
its job (`video:<hash_id>` or `trim:<trim_id>`), so taking is idempotent (a job that
holds one keeps it) and an ended job frees exactly its own. A slot left by a crash
between a job's end and the release is freed by the dispatcher's sweep.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import Document


class JobSlots:
    def __init__(self, db: AsyncDatabase[Document], per_owner: int) -> None:
        self.collection = db["job_slots"]
        self._per_owner = per_owner

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("job")

    async def take(self, owner: str, job: str) -> bool:
        """A slot for `job`; False when all of the owner's slots are busy."""
        if await self.collection.count_documents({"job": job}, limit=1):
            return True
        for number in range(self._per_owner):
            try:
                await self.collection.insert_one(
                    {
                        "_id": f"{owner}:{number}",
                        "owner": owner,
                        "job": job,
                        "taken_at": datetime.now(UTC),
                    }
                )
            except DuplicateKeyError:
                continue
            return True
        return False

    async def release(self, job: str) -> str | None:
        """Free the job's slot; the owner whose slot it was, None if it held none."""
        slot = await self.collection.find_one_and_delete({"job": job})
        return None if slot is None else str(slot["owner"])

    async def jobs(self, taken_before: datetime) -> list[str]:
        """The jobs holding slots taken before `taken_before` (a slot is taken a moment
        before its job is sent: younger ones are left alone)."""
        cursor = self.collection.find({"taken_at": {"$lt": taken_before}}, {"job": 1})
        return [str(doc["job"]) async for doc in cursor]


def video_job(hash_id: str) -> str:
    return f"video:{hash_id}"


def trim_job(trim_id: str) -> str:
    return f"trim:{trim_id}"
