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


if __name__ == "__main__":
    # python3 fastapi_app.py PORT: uvicorn with 2 workers on 127.0.0.1:PORT, its sockets with TCP_NODELAY.
    #
    # uvicorn leaves Nagle's algorithm on and writes a response in more than one send, so
    # on a keep-alive connection the body waited for the client's delayed ACK: every request after
    # a connection's first took 44 ms here, and the benchmark measured that stall instead of
    # FastAPI (1,406 against 5,525 requests/s at 64 connections, 2026-12-02). On Linux an accepted
    # socket inherits TCP_NODELAY from the listening socket, so it is set there.
    import os
    import socket
    import sys

    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(1024)
    listener.set_inheritable(True)
    uvicorn.run("fastapi_app:app", fd=listener.fileno(), workers=2, log_level="warning",
                app_dir=os.path.dirname(os.path.abspath(__file__)))
