from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from lorry.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> dict[str, Any]:
    """200 once the server can serve; needs no token."""
    with runtime.db.read() as conn:
        conn.execute(text("SELECT 1"))
    pool = runtime.pool
    return {"status": "ok", "workers": {"expected": pool.size, "alive": pool.alive}}
