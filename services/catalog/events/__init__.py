"""Live events: the caller's results and job progress as a replayable Server-Sent
Events stream (`GET /api/v1/users/events`), read from a MongoDB log."""
