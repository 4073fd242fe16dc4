"""dense_descriptor_ros: self-supervised dense visual descriptors for robot manipulation.

Subpackages: models, losses, correspondence, data, train, eval, viz (learning half); runtime, matching,
geometry, ros_core (deployment half). Only the ROS shells import rclpy: node/, bag/play, bag/record,
bag/rclpy_io, sim/camera_node, sim/camera_cli, acf/consumer_node and acf/cli (inside its run function).
"""

# The generated messages (dense_descriptor_ros.msg and their type support) can live in another folder
# than these sources: in the project venv scripts/build_msgs.sh installs them into site-packages while
# pip installs the sources editable. Join every `dense_descriptor_ros` folder on sys.path into this package.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
