"""Simulated camera -> descriptor node -> mug handle-frame consumer, on a robot workspace (ROS 2 Jazzy / Kilted).

    ros2 launch dense_descriptor_ros sim_pipeline.launch.py model_path:=/path/to/model.onnx \\
        keypoints_file:=/path/to/mug_keypoints.json

The same three processes as `dense-descriptor pipeline` (which needs no `ros2 launch`):

    sim camera   `dense-descriptor sim camera` (a moving camera around a mug at 30 Hz, ground truth written to
                 ground_truth_file, stamps that encode the frame index), topics in <namespace>/
    node         descriptor_node.launch.py, included with the same namespace (its params_file, profile, ...)
    consumer     `acf_consumer`: the mug handle frame from <namespace>/dense_descriptor/keypoints, published on
                 <namespace>/acf_consumer/handle_pose and scored against the ground truth (a line per second)

Ctrl-C stops all three; the consumer prints its summary. With frames:=N the camera stops after N frames
(the others keep running until Ctrl-C). `--show-args` lists every argument. The camera runs through the
`dense-descriptor` executable (`sim camera` is two words; CMakeLists.txt's ros2_run_executables entries take one).
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "dense_descriptor_ros"
CLI_EXECUTABLE = "dense-descriptor"
CONSUMER_EXECUTABLE = "acf_consumer"
DESCRIPTOR_LAUNCH = "descriptor_node.launch.py"
PROFILE_FILE = "fastdds_large_messages.xml"
DESCRIPTOR_NODE_NAME = "dense_descriptor"
# Arguments handed to descriptor_node.launch.py unchanged.
DESCRIPTOR_ARGUMENTS = ("model_path", "keypoints_file", "backend", "device", "use_fastdds_profile", "log_level")
# Fast DDS 2.x distributions read only the legacy variable (see descriptor_node.launch.py).
FAST_DDS_2_DISTROS = ("", "humble", "iron", "jazzy")


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("namespace", default_value="camera",
                              description="Namespace of the camera, the descriptor node and the consumer."),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Descriptor model (.onnx or .safetensors); empty: the node's params_file "
                                          "value (the shipped model)."),
        DeclareLaunchArgument("keypoints_file", default_value="",
                              description="Mug keypoint file of that model; empty: the node's params_file value."),
        DeclareLaunchArgument("backend", default_value="", choices=["", "onnx", "torch"],
                              description="Inference backend; empty: the node's params_file value."),
        DeclareLaunchArgument("device", default_value="", choices=["", "cpu", "cuda"],
                              description="Inference device; empty: the node's params_file value."),
        DeclareLaunchArgument("size", default_value="320x240", description="Simulated image size WxH."),
        DeclareLaunchArgument("rate", default_value="30", description="Simulated camera frames per second."),
        DeclareLaunchArgument("sequence_frames", default_value="60",
                              description="Frames along the camera's arc (it loops over them)."),
        DeclareLaunchArgument("seed", default_value="0", description="Scene seed of the simulated sequence."),
        DeclareLaunchArgument("frames", default_value="0",
                              description="Stop the camera after this many frames (0: never)."),
        DeclareLaunchArgument("ground_truth_file", default_value="/tmp/dense_descriptor_sim_ground_truth.json",
                              description="Where the camera writes its ground truth and the consumer reads it."),
        DeclareLaunchArgument("filter", default_value="none", choices=["none", "ema", "median"],
                              description="The consumer's temporal filter of the handle frame."),
        DeclareLaunchArgument("use_fastdds_profile", default_value="true", choices=["true", "false"],
                              description=f"Point Fast DDS at launch/{PROFILE_FILE} (images above 320x240 need it)."),
        DeclareLaunchArgument("log_level", default_value="info", choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the three nodes."),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_setup)])


def _launch_setup(context: LaunchContext) -> list:
    """The actions, from the resolved argument values (the topic names need the namespace as a string)."""

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    share = FindPackageShare(PACKAGE)
    namespace = arg("namespace").strip("/")
    prefix = f"/{namespace}" if namespace else ""
    ground_truth = arg("ground_truth_file")
    actions = []
    if arg("use_fastdds_profile") == "true":
        # before any process starts: launch passes its environment to the processes started after it
        profile = PathJoinSubstitution([share, "launch", PROFILE_FILE]).perform(context)
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile))
        if EnvironmentVariable("ROS_DISTRO", default_value="").perform(context) in FAST_DDS_2_DISTROS:
            actions.append(SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile))
    log = ["--log-level", arg("log_level")]

    actions.append(Node(
        package=PACKAGE,
        executable=CONSUMER_EXECUTABLE,
        name="acf_consumer",
        namespace=namespace,
        parameters=[{"keypoints_topic": f"{prefix}/{DESCRIPTOR_NODE_NAME}/keypoints",
                     "ground_truth_file": ground_truth, "filter": arg("filter")}],
        ros_arguments=log,
        output="screen",
        emulate_tty=True,
    ))
    included = {name: arg(name) for name in DESCRIPTOR_ARGUMENTS}
    included.update(namespace=namespace, node_name=DESCRIPTOR_NODE_NAME)
    actions.append(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", DESCRIPTOR_LAUNCH])),
        launch_arguments=list(included.items()),
    ))
    actions.append(Node(
        package=PACKAGE,
        executable=CLI_EXECUTABLE,
        name="sim_camera",
        namespace=namespace,
        arguments=["sim", "camera", "--size", arg("size"), "--rate", arg("rate"), "--frames", arg("sequence_frames"),
                   "--seed", arg("seed"), "--count", arg("frames"), "--stamp-mode", "sequence",
                   "--wait-subscribers", "1", "--save-ground-truth", ground_truth, "--no-progress"],
        ros_arguments=log,
        output="screen",
        emulate_tty=True,
    ))
    return actions
