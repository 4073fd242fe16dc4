"""Spinning a node that knows when it is finished (the simulated camera after --count frames, the
handle-frame consumer after --count keypoint messages)."""

from __future__ import annotations

from typing import Any


def spin_until_done(node: Any) -> bool:
    """Spin `node` until `node.done`; False if interrupted (Ctrl-C, SIGTERM, context shutdown)."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not node.done and node.context.ok():
            executor.spin_once(timeout_sec=0.1)
        return node.done
    except (KeyboardInterrupt, ExternalShutdownException):
        return False
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0.5)
