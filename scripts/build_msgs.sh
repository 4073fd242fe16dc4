#!/usr/bin/env bash
# Build the ROS 2 messages in msg/ and install them into the project venv (ROS 2 Kilted from PyPI
# wheels), so that `.venv/bin/python -c "from dense_descriptor_ros.msg import DescriptorMap"` works
# with no environment variables. Idempotent: a second run with unchanged inputs does nothing.
#
# Usage: scripts/build_msgs.sh [--venv DIR] [--force] [--clean]
#   --venv DIR  the venv to build against and install into (default: .venv in the repository)
#   --force     rebuild and reinstall even if the inputs are unchanged
#   --clean     delete the build folder first (implies --force)
#
# The two traps of building against the wheels (../shared/ENVIRONMENT.md) are handled here and in
# CMakeLists.txt: the venv is the only ament/CMake prefix (AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH,
# Python3_EXECUTABLE), and CMakeLists.txt re-points the wheels' missing Python include directories.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
FORCE=0
CLEAN=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV="$(cd "$2" && pwd)"; shift 2 ;;
    --force) FORCE=1; shift ;;
    --clean) CLEAN=1; FORCE=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build_msgs.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

PY="$VENV/bin/python"
BUILD="$ROOT/build/ros_msgs"
if [[ ! -x "$PY" ]]; then
  echo "build_msgs.sh: no Python at $PY; create the venv first" >&2; exit 2
fi
if [[ ! -f "$VENV/share/ament_cmake/cmake/ament_cmakeConfig.cmake" \
      || ! -d "$VENV/share/rosidl_default_generators" ]]; then
  echo "build_msgs.sh: the ROS 2 build wheels are not in $VENV (ros-kilted-ament-cmake," \
       "ros-kilted-rosidl-default-generators, ...); install them first" >&2
  exit 2
fi
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# Everything that changes the installed result; a matching stamp means nothing to do.
STAMP="$VENV/share/dense_descriptor_ros/build_msgs.stamp"
inputs_hash() {
  (cd "$ROOT" && cat CMakeLists.txt package.xml msg/*.msg scripts/build_msgs.sh \
     && "$PY" -m pip freeze --disable-pip-version-check 2>/dev/null | grep -i -E '^(ros-|rosidl)' || true) \
    | sha256sum | cut -d' ' -f1
}
HASH="$(inputs_hash)"
if [[ $FORCE -eq 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" \
      && -f "$SITE/dense_descriptor_ros/msg/__init__.py" ]]; then
  echo "build_msgs.sh: messages up to date in $VENV"
  exit 0
fi

[[ $CLEAN -eq 1 ]] && rm -rf "$BUILD"
# A build folder configured from another checkout (a moved or re-cloned repository) cannot be reused.
if [[ -f "$BUILD/CMakeCache.txt" ]] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"
fi
mkdir -p "$BUILD"
LOG="$BUILD/log"
GENERATOR=()
if [[ ! -f "$BUILD/CMakeCache.txt" ]] && command -v ninja >/dev/null; then
  GENERATOR=(-G Ninja)
fi

# Only the venv may be a prefix: a sourced /opt/ros setup on the same machine must not leak in.
run() {
  env -u PYTHONPATH -u CMAKE_PREFIX_PATH -u COLCON_PREFIX_PATH \
    AMENT_PREFIX_PATH="$VENV" VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$@"
}
start=$SECONDS
run cmake -S "$ROOT" -B "$BUILD" "${GENERATOR[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$VENV" \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" \
  -DDDR_MESSAGES_ONLY=ON \
  -DBUILD_TESTING=OFF \
  --log-level=WARNING >"$LOG.configure" 2>&1 \
  || { cat "$LOG.configure" >&2; echo "build_msgs.sh: configure failed" >&2; exit 1; }
run cmake --build "$BUILD" --parallel "$(nproc)" >"$LOG.build" 2>&1 \
  || { tail -n 60 "$LOG.build" >&2; echo "build_msgs.sh: build failed (full log:" \
       "$LOG.build)" >&2; exit 1; }
run cmake --install "$BUILD" >"$LOG.install" 2>&1 \
  || { cat "$LOG.install" >&2; echo "build_msgs.sh: install failed" >&2; exit 1; }

if [[ -f "$SITE/dense_descriptor_ros/__init__.py" ]]; then
  echo "build_msgs.sh: $SITE/dense_descriptor_ros/__init__.py exists and would shadow the sources" >&2
  exit 1
fi
echo "$HASH" > "$STAMP"
echo "build_msgs.sh: built and installed the messages into $VENV in $((SECONDS - start)) s"

# Check from a clean environment, as a user would run it.
if ! env -i HOME="$HOME" PATH=/usr/bin:/bin "$PY" -c \
    "from dense_descriptor_ros.msg import Correspondences, DescriptorMap, Keypoint, KeypointArray" 2>/dev/null; then
  echo "build_msgs.sh: warning: installed, but 'from dense_descriptor_ros.msg import DescriptorMap' fails;" \
       "dense_descriptor_ros/__init__.py must extend __path__ (docs/ros_build.md)" >&2
fi
