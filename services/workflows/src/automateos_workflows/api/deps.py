"""Dependencies as Annotated aliases, composed from each other."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from rq import Queue
from sqlmodel import Session

from automateos_common.control import RunControl
from automateos_common.db import get_session
from automateos_common.nodes.registry import NodeRegistry
from automateos_common.params import PageDep as PageDep  # the listings' ?limit&offset, for the routes
from automateos_common.secretstore import SecretStore

from ..publisher import Publisher
from ..settings import WorkflowsSettings, get_settings


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


def get_control(request: Request) -> RunControl:
    return RunControl(request.app.state.redis, request.app.state.queue)


def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


def get_registry(request: Request) -> NodeRegistry:
    registry: NodeRegistry = request.app.state.registry
    return registry


def get_secret_store(request: Request) -> SecretStore:
    store: SecretStore = request.app.state.secret_store
    return store


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[WorkflowsSettings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
RegistryDep = Annotated[NodeRegistry, Depends(get_registry)]
QueueDep = Annotated[Queue, Depends(get_queue)]
ControlDep = Annotated[RunControl, Depends(get_control)]
SecretStoreDep = Annotated[SecretStore, Depends(get_secret_store)]
