"""Launch the dense descriptor lifecycle node on a robot (ROS 2 Jazzy / Kilted).

    ros2 launch dense_descriptor_ros descriptor_node.launch.py \\
        model_path:=/path/to/model.onnx color_topic:=/camera/camera/color/image_raw

Inputs (relative, remapped by the *_topic arguments): color/image_raw, aligned_depth_to_color/image_raw,
color/camera_info. Outputs: ~/descriptors, ~/descriptors/pca, ~/keypoints, ~/correspondences, /diagnostics.
`ros2 launch dense_descriptor_ros descriptor_node.launch.py --show-args` lists every argument.

Parameters come from params_file; the model/backend/device/... arguments override it only when they are
non-empty, so an empty argument never clobbers a value set in the file. Deciding that needs the argument
values, which exist only at launch time: hence the one OpaqueFunction below (launch has no portable
"include this dict entry only if non-empty" substitution in Jazzy).
"""

from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

PACKAGE = "dense_descriptor_ros"
EXECUTABLE = "descriptor_node"
PROFILE_FILE = "fastdds_large_messages.xml"
PARAMS_FILE = "descriptor_node.yaml"

# Launch arguments that override a node parameter of the same name when non-empty.
STRING_PARAMETERS = ("model_path", "backend", "device", "keypoints_file", "matcher_file", "correspondence_method",
                     "qos_reliability")
BOOL_PARAMETERS = ("require_device",)
# Node inputs (relative names) and the launch argument that remaps each.
INPUT_REMAPS = (
    ("color_topic", "color/image_raw"),
    ("depth_topic", "aligned_depth_to_color/image_raw"),
    ("camera_info_topic", "color/camera_info"),
)
# Distributions whose Fast DDS (2.x) reads only the legacy FASTRTPS_DEFAULT_PROFILES_FILE. Fast DDS 3
# (Kilted and later) reads FASTDDS_DEFAULT_PROFILES_FILE; rmw_fastrtps there still honours the legacy name
# but logs a deprecation warning, so it is set only where it is needed (or when ROS_DISTRO is unknown).
FAST_DDS_2_DISTROS = ("", "humble", "iron", "jazzy")


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="camera",
                              description="Namespace of the node; its relative input topics resolve in it."),
        DeclareLaunchArgument("node_name", default_value="dense_descriptor", description="Name of the node."),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", PARAMS_FILE]),
                              description="YAML parameter file (ros__parameters); empty: none."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Model file (.onnx or checkpoint); empty: keep params_file's value."),
        DeclareLaunchArgument("backend", default_value="", choices=["", "onnx", "torch"],
                              description="Inference backend; empty: keep params_file's value."),
        DeclareLaunchArgument("device", default_value="", choices=["", "cpu", "cuda"],
                              description="Inference device; empty: keep params_file's value."),
        DeclareLaunchArgument("require_device", default_value="", choices=["", "true", "false"],
                              description="Fail instead of falling back to CPU; empty: keep params_file's value."),
        DeclareLaunchArgument("keypoints_file", default_value="",
                              description="Named keypoints (YAML) to track; empty: keep params_file's value."),
        DeclareLaunchArgument("matcher_file", default_value="",
                              description="Learned matcher (.onnx) for correspondence_method matcher; empty: keep "
                                          "params_file's value."),
        DeclareLaunchArgument("correspondence_method", default_value="", choices=["", "descriptor", "matcher"],
                              description="Correspondences from descriptor nearest neighbours or the learned matcher; "
                                          "empty: keep params_file's value."),
        DeclareLaunchArgument("color_topic", default_value="color/image_raw",
                              description="Colour image topic (remaps the node's color/image_raw)."),
        DeclareLaunchArgument("depth_topic", default_value="aligned_depth_to_color/image_raw",
                              description="Depth image aligned to colour (remaps aligned_depth_to_color/image_raw)."),
        DeclareLaunchArgument("camera_info_topic", default_value="color/camera_info",
                              description="Colour CameraInfo topic (remaps color/camera_info)."),
        DeclareLaunchArgument("qos_reliability", default_value="", choices=["", "best_effort", "reliable"],
                              description="Subscription reliability; must be compatible with the camera driver's "
                                          "publishers; empty: keep params_file's value."),
        DeclareLaunchArgument("use_fastdds_profile", default_value="true", choices=["true", "false"],
                              description=f"Point Fast DDS at launch/{PROFILE_FILE} (64 MB shared memory for "
                                          "large messages; used with RMW_IMPLEMENTATION=rmw_fastrtps_cpp)."),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="The node configures and activates itself; false: it waits in "
                                          "'unconfigured' for a lifecycle manager or `ros2 lifecycle set`."),
        DeclareLaunchArgument("log_level", default_value="info", choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the node."),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_setup)])


def _launch_setup(context: LaunchContext) -> list:
    """Build the actions from the resolved argument values (see the module docstring for why)."""

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    actions = []
    if arg("use_fastdds_profile") == "true":
        profile = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", PROFILE_FILE]).perform(context)
        # Set before the node action: launch passes its environment to the processes it starts afterwards.
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile))
        if EnvironmentVariable("ROS_DISTRO", default_value="").perform(context) in FAST_DDS_2_DISTROS:
            actions.append(SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile))

    parameters: list = []
    params_file = arg("params_file")
    if params_file:
        if not os.path.isfile(params_file):
            raise RuntimeError(f"params_file {params_file!r} does not exist (pass params_file:='' for none)")
        parameters.append(params_file)
    # Plain str / bool values keep their type: launch_ros writes them to a YAML file keyed by the node's
    # fully qualified name, passed after params_file, so they win over it.
    overrides: dict[str, str | bool] = {name: arg(name) for name in STRING_PARAMETERS if arg(name)}
    overrides.update({name: arg(name) == "true" for name in BOOL_PARAMETERS if arg(name)})
    if overrides:
        parameters.append(overrides)

    remappings = [(source, arg(argument)) for argument, source in INPUT_REMAPS
                  if arg(argument) and arg(argument) != source]

    actions.append(LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=arg("node_name"),
        namespace=arg("namespace"),
        parameters=parameters,
        remappings=remappings,
        # The node's own flag, not LifecycleNode(autostart=...): that one (launch_ros >= 0.26.7) is a
        # plain bool and would request transitions the self-starting node is already making.
        arguments=[] if arg("autostart") == "true" else ["--no-autostart"],
        ros_arguments=["--log-level", arg("log_level")],
        output="screen",
        emulate_tty=True,
    ))
    return actions
