"""launch/: the ROS 2 launch files and the Fast DDS profile.

`launch` and `launch_ros` cannot be installed in the project venv (ENVIRONMENT.md), so the launch files are
checked statically: parsed with `ast`, never imported or run. The checks are generic over every
`launch/*.launch.py`. What can run here runs for real: the Fast DDS profile is loaded by two rclpy processes
that exchange 640x480 depth images, and the parameter file is resolved by rcl for the namespaced node the
launch file starts, with the overrides file launch_ros would write.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCH_DIR = REPO / "launch"
CONFIG_DIR = REPO / "config"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))
PROFILE = LAUNCH_DIR / "fastdds_large_messages.xml"
DESCRIPTOR_LAUNCH = LAUNCH_DIR / "descriptor_node.launch.py"
# A file named in a launch file: config or launch data that must ship with the package.
REFERENCED_FILE = re.compile(r"^[\w./-]+\.(?:ya?ml|xml|launch\.py)$")
UNRESOLVED = object()


# --- reading the sources --------------------------------------------------------------------------------

def package_name() -> str:
    return ET.parse(REPO / "package.xml").getroot().findtext("name").strip()


def package_dependencies(*kinds: str) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {el.text.strip() for kind in kinds for el in root.iter(kind)}


def ros2_run_executables() -> set[str]:
    """Names of the `ros2 run` executables CMakeLists.txt generates: entries "<name>=<subcommand>"."""
    text = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"set\(\s*ros2_run_executables\b(.*?)\)", text, re.S)
    assert block, "CMakeLists.txt has no set(ros2_run_executables ...) list"
    names = {entry.split("=", 1)[0] for entry in re.findall(r'"([^"]*)"', block.group(1))}
    assert names, "ros2_run_executables is empty"
    return names


class LaunchSource:
    """One launch file as an AST, with its module-level literal constants for resolving names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text()
        self.tree = ast.parse(self.text, filename=str(path))
        self.constants: dict[str, object] = {}
        for stmt in self.tree.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else (
                [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value is not None else [])
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        self.constants[target.id] = ast.literal_eval(stmt.value)
                    except ValueError:
                        pass

    def resolve(self, node: ast.AST | None) -> object:
        """The literal value of an expression (constants, module-level names, lists/tuples), or UNRESOLVED."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.constants.get(node.id, UNRESOLVED)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.resolve(e) for e in node.elts]
            return UNRESOLVED if any(i is UNRESOLVED for i in items) else items
        return UNRESOLVED

    def calls(self, name: str) -> list[ast.Call]:
        """Calls of `name(...)` or `something.name(...)`."""
        return [n for n in ast.walk(self.tree) if isinstance(n, ast.Call) and (
            (isinstance(n.func, ast.Name) and n.func.id == name)
            or (isinstance(n.func, ast.Attribute) and n.func.attr == name))]

    def declared_arguments(self) -> dict[str, ast.Call]:
        declared = {}
        for call in self.calls("DeclareLaunchArgument"):
            name = self.resolve(call.args[0] if call.args else kwarg(call, "name"))
            assert isinstance(name, str), f"{self.path.name}:{call.lineno}: argument name must be a literal"
            assert name not in declared, f"{self.path.name}: argument {name!r} declared twice"
            declared[name] = call
        return declared

    def string_literals(self) -> list[str]:
        return [n.value for n in ast.walk(self.tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def kwarg(call: ast.Call, key: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def line(src: LaunchSource, call: ast.Call) -> str:
    return f"{src.path.name}:{call.lineno}"


@pytest.fixture(scope="module", params=LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def src(request) -> LaunchSource:
    return LaunchSource(request.param)


# --- static checks, every launch file -------------------------------------------------------------------

def test_there_are_launch_files():
    assert DESCRIPTOR_LAUNCH in LAUNCH_FILES


def test_defines_generate_launch_description(src):
    fn = next((s for s in src.tree.body if isinstance(s, ast.FunctionDef) and s.name == "generate_launch_description"),
              None)
    assert fn is not None, f"{src.path.name}: no module-level generate_launch_description()"
    required = len(fn.args.args) - len(fn.args.defaults)
    assert required == 0, f"{src.path.name}: generate_launch_description() must take no required arguments"


def test_arguments_have_default_and_description(src):
    for name, call in src.declared_arguments().items():
        default = kwarg(call, "default_value")
        assert default is not None and src.resolve(default) is not None, \
            f"{line(src, call)}: argument {name!r} has no default_value"
        description = kwarg(call, "description")
        text = src.resolve(description)
        assert isinstance(description, ast.JoinedStr) or (isinstance(text, str) and text.strip()), \
            f"{line(src, call)}: argument {name!r} has no description"


def test_choices_contain_the_default(src):
    for name, call in src.declared_arguments().items():
        if kwarg(call, "choices") is None:
            continue
        choices = src.resolve(kwarg(call, "choices"))
        assert isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices), \
            f"{line(src, call)}: choices of {name!r} must be a literal list of strings"
        default = src.resolve(kwarg(call, "default_value"))
        assert isinstance(default, str), f"{line(src, call)}: {name!r} has choices, so its default must be literal"
        assert default in choices, f"{line(src, call)}: default {default!r} of {name!r} is not in {choices}"


def test_launch_configurations_are_declared(src):
    declared = set(src.declared_arguments())
    for call in src.calls("LaunchConfiguration"):
        name = src.resolve(call.args[0] if call.args else kwarg(call, "variable_name"))
        if isinstance(name, str):
            assert name in declared, f"{line(src, call)}: LaunchConfiguration({name!r}) is never declared"


def test_executables_are_generated_by_cmake(src):
    installed = ros2_run_executables()
    for call in src.calls("Node") + src.calls("LifecycleNode") + src.calls("ComposableNodeContainer"):
        executable = src.resolve(kwarg(call, "executable"))
        package = src.resolve(kwarg(call, "package"))
        if package != package_name():
            continue  # another package's node (e.g. a camera driver)
        assert executable in installed, \
            f"{line(src, call)}: executable {executable!r} is not in CMakeLists.txt ros2_run_executables {installed}"


def test_package_names_are_this_package(src):
    for call in src.calls("Node") + src.calls("LifecycleNode") + src.calls("FindPackageShare"):
        package = src.resolve(kwarg(call, "package") or (call.args[0] if call.args else None))
        assert package is not UNRESOLVED, f"{line(src, call)}: package must be a literal (or module constant)"
        if package != package_name():
            # Other packages are allowed only if declared as dependencies.
            assert package in package_dependencies("exec_depend", "depend"), \
                f"{line(src, call)}: package {package!r} is neither this package nor an exec_depend"


def test_lifecycle_nodes_pass_name_and_namespace(src):
    # launch_ros >= 0.26.7 (Jazzy) / Kilted: LifecycleNode(*, name, namespace, autostart=False, **kwargs).
    for call in src.calls("LifecycleNode"):
        for key in ("name", "namespace"):
            assert kwarg(call, key) is not None, f"{line(src, call)}: LifecycleNode needs {key}="


def test_referenced_files_ship_with_the_package(src):
    """File names (.yaml, .xml, .launch.py) in a launch file are in config/ or launch/, and in the very folder a
    PathJoinSubstitution([share, "config", NAME]) names. Paths into another package's share
    (PathJoinSubstitution([FindPackageShare("other"), ...])) are that package's business."""
    joins = []
    foreign = set()
    for call in src.calls("PathJoinSubstitution"):
        elts = call.args[0].elts if call.args and isinstance(call.args[0], (ast.List, ast.Tuple)) else []
        parts = [src.resolve(e) for e in elts]
        other_package = any(isinstance(e, ast.Call) and e in src.calls("FindPackageShare")
                            and src.resolve(e.args[0] if e.args else kwarg(e, "package")) != package_name()
                            for e in elts)
        if other_package:
            foreign |= {p for p in parts if isinstance(p, str)}
        else:
            joins.append((call, parts))
    shipped = {p.name for d in (CONFIG_DIR, LAUNCH_DIR) if d.is_dir() for p in d.iterdir()}
    names = {s for s in src.string_literals() if REFERENCED_FILE.match(s)} | {
        v for v in src.constants.values() if isinstance(v, str) and REFERENCED_FILE.match(v)}
    for name in names - foreign:
        assert Path(name).name in shipped, f"{src.path.name} names {name!r}, which is not in config/ or launch/"
    for call, parts in joins:
        for folder, name in zip(parts, parts[1:], strict=False):
            if folder in ("config", "launch") and isinstance(name, str):
                assert (REPO / folder / name).is_file(), f"{line(src, call)}: {folder}/{name} does not exist"


def test_no_eval_of_substitutions(src):
    for call in src.calls("eval") + src.calls("exec") + src.calls("PythonExpression"):
        pytest.fail(f"{line(src, call)}: no eval()/exec()/PythonExpression in launch files (STYLE.md)")


def test_imports_are_dependencies(src):
    declared = package_dependencies("exec_depend", "depend")
    # rosdep keys of Python libraries are python3-<module> (python3-yaml: yaml).
    allowed = declared | {d.removeprefix("python3-") for d in declared} | set(sys.stdlib_module_names)
    for node in ast.walk(src.tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for module in modules:
            top = module.split(".")[0]
            assert top in allowed, f"{src.path.name}:{node.lineno}: imports {top!r}, not an exec_depend"


def test_package_xml_runs_launch_files():
    assert {"launch", "launch_ros"} <= package_dependencies("exec_depend", "depend")


# --- descriptor_node.launch.py: the node's contract -----------------------------------------------------

@pytest.fixture(scope="module")
def descriptor_launch() -> LaunchSource:
    return LaunchSource(DESCRIPTOR_LAUNCH)


def default_of(src: LaunchSource, name: str) -> object:
    return src.resolve(kwarg(src.declared_arguments()[name], "default_value"))


def choices_of(src: LaunchSource, name: str) -> set[str]:
    return set(src.resolve(kwarg(src.declared_arguments()[name], "choices")))


def test_descriptor_launch_arguments(descriptor_launch):
    src = descriptor_launch
    assert set(src.declared_arguments()) >= {
        "namespace", "node_name", "params_file", "model_path", "backend", "device", "require_device",
        "keypoints_file", "matcher_file", "correspondence_method", "color_topic", "depth_topic", "camera_info_topic",
        "qos_reliability", "use_fastdds_profile", "autostart", "log_level"}
    assert default_of(src, "namespace") == "camera"
    assert default_of(src, "node_name") == "dense_descriptor"
    assert choices_of(src, "backend") >= {"onnx", "torch"}
    assert choices_of(src, "device") >= {"cpu", "cuda"}
    assert choices_of(src, "qos_reliability") >= {"best_effort", "reliable"}
    assert choices_of(src, "correspondence_method") >= {"descriptor", "matcher"}
    for flag in ("use_fastdds_profile", "autostart"):
        assert choices_of(src, flag) == {"true", "false"} and default_of(src, flag) == "true"
    # Parameter overrides default to empty: they must not clobber the params file unless given.
    for name in (*src.constants["STRING_PARAMETERS"], *src.constants["BOOL_PARAMETERS"]):
        assert default_of(src, name) == "", f"{name} must default to '' (keep params_file's value)"


def test_descriptor_launch_wiring(descriptor_launch):
    src = descriptor_launch
    declared = set(src.declared_arguments())
    # Every argument the setup function reads through arg("...") or the name tables is declared.
    read = {v for c in src.calls("arg") if c.args and isinstance(v := src.resolve(c.args[0]), str)}
    read |= set(src.constants["STRING_PARAMETERS"]) | set(src.constants["BOOL_PARAMETERS"])
    read |= {argument for argument, _ in src.constants["INPUT_REMAPS"]}
    assert read <= declared, f"read but not declared: {read - declared}"
    assert dict((s, a) for a, s in src.constants["INPUT_REMAPS"]) == {
        "color/image_raw": "color_topic", "aligned_depth_to_color/image_raw": "depth_topic",
        "color/camera_info": "camera_info_topic"}
    for argument, source in src.constants["INPUT_REMAPS"]:
        assert default_of(src, argument) == source
    literals = set(src.string_literals())
    assert {"--no-autostart", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"} <= literals
    assert src.constants["PROFILE_FILE"] == PROFILE.name
    (node,) = src.calls("LifecycleNode")
    assert src.resolve(kwarg(node, "executable")) == "descriptor_node"


def test_node_cli_accepts_the_launch_flags(descriptor_launch):
    """Flags the launch file passes to the node (arguments=) are defined by the package's own code."""
    flags = {s for s in descriptor_launch.string_literals() if re.fullmatch(r"--[a-z][\w-]*", s)} - {"--log-level"}
    sources = "\n".join(p.read_text() for p in (REPO / "dense_descriptor_ros").rglob("*.py"))
    for flag in flags:
        assert re.search(rf"""["']{re.escape(flag)}["']""", sources), \
            f"the launch file passes {flag}, but no module in dense_descriptor_ros defines it"


# --- the Fast DDS profile ------------------------------------------------------------------------------

def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if local(c.tag) == name]


def test_profile_structure():
    root = ET.parse(PROFILE).getroot()
    profiles = root if local(root.tag) == "profiles" else children(root, "profiles")[0]
    descriptors = {}
    blocks = children(profiles, "transport_descriptors")
    for td in (d for block in blocks for d in children(block, "transport_descriptor")):
        fields = {local(c.tag): (c.text or "").strip() for c in td}
        descriptors[fields["transport_id"]] = fields
    kinds = {d["type"]: d for d in descriptors.values()}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"]["segment_size"]) == 64 * 1024 * 1024
    (participant,) = [p for p in children(profiles, "participant") if p.get("is_default_profile") == "true"]
    (rtps,) = children(participant, "rtps")
    assert [c.text.strip() for c in children(rtps, "useBuiltinTransports")] == ["false"]
    used = [t.text.strip() for block in children(rtps, "userTransports") for t in children(block, "transport_id")]
    assert sorted(used) == sorted(descriptors), "the default participant must use both transports"


def ros_env(**extra: str) -> dict[str, str]:
    """The subprocess environment of a ROS test: Fast DDS, localhost only, this module's own domain."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DEFAULT_PROFILES_FILE")}
    env.update(RMW_IMPLEMENTATION="rmw_fastrtps_cpp", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=str(100 + os.getpid() % 100), PYTHONUNBUFFERED="1", **extra)
    return env


requires_fastdds_rclpy = pytest.mark.skipif(
    importlib.util.find_spec("rclpy") is None or importlib.util.find_spec("sensor_msgs") is None
    or importlib.util.find_spec("rmw_fastrtps_cpp") is None,
    reason="needs rclpy, sensor_msgs and rmw_fastrtps_cpp")

N_FRAMES = 30
TOPIC = "ddr_launch_profile_test"
_QOS = """
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
"""
SUBSCRIBER = _QOS + f"""
import json, os, re, sys, time
import rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("ddr_profile_sub")
seen, last = set(), [None]
def on_image(msg):
    if (msg.height, msg.width, msg.encoding, len(msg.data)) == (480, 640, "16UC1", 480 * 640 * 2):
        seen.add(msg.header.frame_id)
        last[0] = time.monotonic()
node.create_subscription(Image, "{TOPIC}", on_image, QOS)
deadline = time.monotonic() + 12
while node.count_publishers("{TOPIC}") == 0 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
print("MATCHED", flush=True)
while len(seen) < {N_FRAMES} and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
    if last[0] is not None and time.monotonic() - last[0] > 1.5:
        break
# This participant's own shared-memory segment(s), from the files it has mapped.
mapped = set(re.findall(r"(/dev/shm/fastdds_[0-9a-f]{{16}})$", open("/proc/self/maps").read(), re.M))
print(json.dumps({{"received": len(seen), "segments": sorted(os.stat(p).st_size for p in mapped)}}), flush=True)
node.destroy_node()
rclpy.shutdown()
"""
PUBLISHER = _QOS + f"""
import sys, time
import rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("ddr_profile_pub")
pub = node.create_publisher(Image, "{TOPIC}", QOS)
deadline = time.monotonic() + 12
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
sys.stdin.readline()  # the test says go once the subscriber has matched too
msg = Image(height=480, width=640, encoding="16UC1", step=640 * 2, data=bytes(480 * 640 * 2))
start = time.monotonic()
for i in range({N_FRAMES}):
    msg.header.frame_id = str(i)
    pub.publish(msg)
    time.sleep(max(0.0, start + (i + 1) / 30 - time.monotonic()))  # 30 Hz
time.sleep(0.5)
node.destroy_node()
rclpy.shutdown()
"""


@requires_fastdds_rclpy
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_profile_delivers_depth_images_at_30hz():
    """Two processes with the profile (both variables, as the launch file sets them where ROS_DISTRO is unknown):
    no XML errors, a 64 MB segment, and >= 27 of 30 best-effort 640x480 16UC1 images at 30 Hz (ENVIRONMENT.md:
    8 of 300 arrived with the default 512 KB segment)."""
    env = ros_env(FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE), FASTRTPS_DEFAULT_PROFILES_FILE=str(PROFILE))
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env, text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        matched = sub.stdout.readline().strip()  # the children give up after 12 s, so this returns
        pub_out, pub_err = pub.communicate("go\n", timeout=30)
        sub_rest, sub_err = sub.communicate(timeout=30)
    finally:
        for p in (sub, pub):
            if p.poll() is None:
                p.kill()
    assert pub.returncode == 0 and sub.returncode == 0, f"publisher:\n{pub_err}\nsubscriber:\n{sub_err}"
    for who, err in (("publisher", pub_err), ("subscriber", sub_err)):
        assert "XMLPARSER" not in err and "Error" not in err, f"Fast DDS rejected the profile ({who}):\n{err}"
    assert matched == "MATCHED"
    result = json.loads(sub_rest.strip().splitlines()[-1])
    assert result["segments"] and max(result["segments"]) >= 64 * 1024 * 1024, \
        f"the profile's 64 MB SHM segment was not created: {result['segments']}"
    assert result["received"] >= 27, f"only {result['received']}/{N_FRAMES} images arrived"


# --- the parameter file, resolved by rcl for the node the launch file starts -----------------------------

PARAMS_PROBE = """
import json, rclpy
from rclpy.node import Node
rclpy.init()
node = Node("probe", allow_undeclared_parameters=True, automatically_declare_parameters_from_overrides=True)
print(json.dumps({name: p.value for name, p in node.get_parameters_by_prefix("").items()}))
rclpy.shutdown()
"""


def resolved_parameters(namespace: str, name: str, *params_files: Path) -> dict:
    cmd = [sys.executable, "-c", PARAMS_PROBE, "--ros-args", "-r", f"__node:={name}", "-r", f"__ns:=/{namespace}"]
    for path in params_files:
        cmd += ["--params-file", str(path)]
    result = subprocess.run(cmd, env=ros_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@requires_fastdds_rclpy
def test_params_file_reaches_the_launched_node(descriptor_launch, tmp_path):
    """config/<params file> applies to the node under the launch file's default namespace and name, and the
    overrides file launch_ros writes for non-empty arguments (keyed by the fully qualified node name, passed
    after params_file) wins over it. A YAML keyed `dense_descriptor:` would apply only to /dense_descriptor:
    key it `/**:` (or `/**/dense_descriptor:`)."""
    src = descriptor_launch
    params_file = CONFIG_DIR / src.constants["PARAMS_FILE"]
    assert params_file.is_file(), f"{params_file.relative_to(REPO)} is missing (the launch file's default)"
    namespace, name = default_of(src, "namespace"), default_of(src, "node_name")
    names = [*src.constants["STRING_PARAMETERS"], *src.constants["BOOL_PARAMETERS"]]

    from_file = resolved_parameters(namespace, name, params_file)
    missing = [n for n in names if n not in from_file]
    keys = list(yaml.safe_load(params_file.read_text()))
    assert not missing, (f"{params_file.name} (top-level keys {keys}) sets none of {missing} for "
                         f"/{namespace}/{name}: a relative key matches only a node in the root namespace; "
                         "key the file `/**:` (or `/**/dense_descriptor:`)")

    # What launch_ros' Node._create_params_file_from_dict writes for e.g. backend:=torch require_device:=true.
    overrides = {"model_path": "/tmp/model.onnx", "backend": "torch", "require_device": True}
    override_file = tmp_path / "launch_params.yaml"
    override_file.write_text(yaml.dump({f"/{namespace}/{name}": {"ros__parameters": overrides}}))
    both = resolved_parameters(namespace, name, params_file, override_file)
    assert {k: both[k] for k in overrides} == overrides
    untouched = [n for n in names if n not in overrides]
    assert {k: both[k] for k in untouched} == {k: from_file[k] for k in untouched}


# --- the node, started with the command line launch_ros builds ------------------------------------------

STATE_PROBE = """
import json, sys
import rclpy
from lifecycle_msgs.srv import GetState
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import parameter_value_to_python
fq_name, names = sys.argv[1], sys.argv[2].split(",")
rclpy.init()
node = rclpy.create_node("ddr_launch_probe")
def call(srv_type, service, request):
    client = node.create_client(srv_type, service)
    if not client.wait_for_service(timeout_sec=30):
        sys.exit(f"no service {service}")
    for _ in range(3):  # both services only read, so a reply lost to a slow match is asked for again
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=10)
        if future.result() is not None:
            return future.result()
    sys.exit(f"no reply from {service} in 3 calls")
state = call(GetState, fq_name + "/get_state", GetState.Request()).current_state.label
values = call(GetParameters, fq_name + "/get_parameters", GetParameters.Request(names=names)).values
print(json.dumps({"state": state, "parameters": dict(zip(names, map(parameter_value_to_python, values)))}))
rclpy.shutdown()
"""
# What CMakeLists.txt generates for `ros2 run dense_descriptor_ros descriptor_node`.
ROS2_RUN_SCRIPT = "import sys; from dense_descriptor_ros.cli import main; sys.argv[1:1] = ['node']; sys.exit(main())"


@requires_fastdds_rclpy
@pytest.mark.skipif(importlib.util.find_spec("dense_descriptor_ros.node") is None
                    or importlib.util.find_spec("lifecycle_msgs") is None, reason="needs the node and lifecycle_msgs")
def test_node_starts_from_the_launch_command_line(descriptor_launch, tmp_path):
    """The node under the command line launch_ros 0.26-0.28 builds for this launch file with autostart:=false
    and backend/require_device/qos_reliability given (launch_ros/actions/node.py: executable, arguments,
    --ros-args ros_arguments, --ros-args -r __node -r __ns --params-file ... -r remaps) stays unconfigured
    and holds the overridden parameters, the others from params_file."""
    src = descriptor_launch
    namespace, name = default_of(src, "namespace"), default_of(src, "node_name")
    fq_name = f"/{namespace}/{name}"
    overrides = {"backend": "torch", "require_device": True, "qos_reliability": "reliable"}
    override_file = tmp_path / "launch_params.yaml"
    override_file.write_text(yaml.dump({fq_name: {"ros__parameters": overrides}}))
    params_file = CONFIG_DIR / src.constants["PARAMS_FILE"]
    cmd = [sys.executable, "-c", ROS2_RUN_SCRIPT, "--no-autostart",
           "--ros-args", "--log-level", "info",
           "--ros-args", "-r", f"__node:={name}", "-r", f"__ns:=/{namespace}",
           "--params-file", str(params_file), "--params-file", str(override_file),
           "-r", "color/image_raw:=/cam/color/image_raw"]
    env = ros_env(FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE), OMP_NUM_THREADS="1")
    node = subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        names = [*src.constants["STRING_PARAMETERS"], *src.constants["BOOL_PARAMETERS"]]
        probe = subprocess.run([sys.executable, "-c", STATE_PROBE, fq_name, ",".join(names)], env=env,
                               capture_output=True, text=True, timeout=90)
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node_log, _ = node.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node_log, _ = node.communicate()
    assert probe.returncode == 0, f"probe: {probe.stderr}\nnode:\n{node_log}"
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["state"] == "unconfigured", node_log
    expected = yaml.safe_load(params_file.read_text())
    (file_values,) = [v["ros__parameters"] for v in expected.values()]
    assert result["parameters"] == {n: overrides.get(n, file_values[n]) for n in names}, node_log
