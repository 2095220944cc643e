from __future__ import annotations

from fastapi import APIRouter

from automateos_common.auth import CurrentPrincipal

from ...schemas import NodeTypePublic
from ..deps import RegistryDep

router = APIRouter(prefix="/api/v1/node-types", tags=["node types"])


@router.get("", response_model=list[NodeTypePublic])
def list_node_types(_: CurrentPrincipal, registry: RegistryDep) -> list[NodeTypePublic]:
    """Every node type this installation knows, with the JSON Schema of its config."""
    out = []
    for name in registry.types():
        cls = registry.get(name)
        assert cls is not None
        out.append(NodeTypePublic(type=name, kind=cls.kind, title=cls.title or name, description=cls.description,
                                  config_schema=cls.Config.model_json_schema()))
    return out
