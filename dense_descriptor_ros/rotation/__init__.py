"""Rotation: equivariant descriptors by lifting a network to C_N, and circular descriptors (issue #16)."""

from .lifting import (
                      ORDERS,
                      OrbitLifter,
                      circular_peak,
                      group_pool,
                      orbit_orientation,
                      orbit_rotation,
                      rotate_image,
                      rotation_matrix,
)

__all__ = ["ORDERS", "OrbitLifter", "circular_peak", "group_pool", "orbit_orientation", "orbit_rotation",
           "rotate_image", "rotation_matrix"]
