"""A node run in the test's event loop, as `ecocluster run` runs it: started in a task,
waited for until every stage is ready, stopped (and awaited) on the way out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.node import NodeState, run_node

__all__ = ["running_node"]


@contextlib.asynccontextmanager
async def running_node(
    cluster: Cluster,
    settings: Settings,
    only: Sequence[str] | None = None,
    *,
    ready_within_s: float = 15.0,
    stop_within_s: float = 30.0,
) -> AsyncIterator[NodeState]:
    """Yield the node's state once it is ready; a node that fails or never gets ready
    fails the test with its own error."""
    stop = asyncio.Event()
    ready: asyncio.Queue[NodeState] = asyncio.Queue()
    node = asyncio.create_task(
        run_node(cluster, settings, only, stop=stop, on_ready=ready.put_nowait)
    )
    try:
        got = asyncio.ensure_future(ready.get())
        done, _ = await asyncio.wait({got, node}, timeout=ready_within_s)
        if node in done:
            node.result()  # its own error, if it stopped
        got.cancel()
        assert got in done, f"node ({', '.join(only or ['all'])}) never became ready"
        yield got.result()
    finally:
        stop.set()
        await asyncio.wait_for(node, stop_within_s)
