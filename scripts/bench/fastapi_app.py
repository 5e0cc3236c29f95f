"""The seed's stack for comparison: FastAPI + pydantic validating the same events (no storage)."""
from datetime import datetime
from typing import List, Literal, Optional, Union

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_id: str
    event_type: Literal["play", "pause", "stop"]
    timestamp: datetime
    user_id: str
    device_id: str
    session_id: Optional[str] = None
    ip_address: str
    content_id: str
    content_type: Literal["movie", "episode", "ad"]
    title: str
    genre: List[str]
    duration_seconds: int = Field(ge=0)
    language: str
    current_timestamp: float = Field(ge=0)
    event_source: str
    schema_version: str = "1.0"


Events = TypeAdapter(Union[List[Event], Event])
app = FastAPI()


@app.post("/v1/events", status_code=202)
async def events(request: Request):
    body = await request.body()
    try:
        parsed = Events.validate_json(body)
    except ValidationError as error:
        return JSONResponse({"accepted": 0, "rejected": 1, "errors": [str(error)[:200]]}, status_code=400)
    count = len(parsed) if isinstance(parsed, list) else 1
    return JSONResponse({"accepted": count, "rejected": 0, "errors": []}, status_code=202)
