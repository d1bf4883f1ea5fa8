"""FastAPI dependencies: who is calling, and may they.

Module-level, because FastAPI resolves annotations in a function's module: a dependency type
defined inside the app factory would be taken for a request field.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tuneloop.serve.auth import Principal, require


def principal(request: Request) -> Principal:
    keys = request.app.state.services.keys
    return keys.authenticate(request.headers.get("authorization"))  # type: ignore[no-any-return]


def inference(who: Annotated[Principal, Depends(principal)]) -> Principal:
    require(who, "inference")
    return who


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    require(who, "admin")
    return who


User = Annotated[Principal, Depends(inference)]
Admin = [Depends(admin)]
AdminUser = Annotated[Principal, Depends(admin)]
