"""Static checks of every launch/*.launch.py, without `launch` or `launch_ros` installed.

A launch file is parsed with `ast`; for every `Node(...)` the validator checks the package,
that the executable is a console_script of the installed distribution (and in setup.py's
NODES), that each params file (PathJoinSubstitution([FindPackageShare('robot_ctrl'), ...]))
exists and has a section for the node, and that every parameter key in that section and in
the inline override dicts is declared by the REAL node class (instantiated with rclpy). The
node is also started once with the launch's effective parameters (YAML + overrides, launch
arguments at their defaults, typed by yaml.safe_load as launch_ros does), so a bad value or a
wrong type fails here, not at `ros2 launch`. Every LaunchConfiguration('x') needs a
DeclareLaunchArgument('x').
"""
from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "robot_ctrl"
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
UNKNOWN = object()  # an override value the validator cannot evaluate statically


def ros_env() -> None:
    """DDS on the loopback, a per-run domain (a conftest may have set these already)."""
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config/dds/loopback.xml"))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 80))


# -- what the package installs ----------------------------------------------------------------
def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def console_scripts() -> dict[str, str]:
    """name -> 'module:function' for the console_scripts of the installed robot_ctrl distribution."""
    return {
        e.name: e.value
        for e in importlib.metadata.entry_points(group="console_scripts")
        if e.dist is not None and _canonical(e.dist.name) == _canonical(PACKAGE)
    }


def setup_py_nodes() -> dict[str, str]:
    """name -> 'module:function' from the NODES list in setup.py (read with ast, not executed)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NODES" for t in node.targets):
            entries = ast.literal_eval(node.value)
            return {k.strip(): v.strip() for k, _, v in (e.partition("=") for e in entries)}
    raise AssertionError("setup.py has no NODES list")


# -- the real node classes, instantiated with rclpy -------------------------------------------
class NodeProbe:
    """Instantiates node classes in a private rclpy context and answers questions about them.

    Start-up results are cached, so launch files starting a node with the same parameters cost one
    instantiation.
    """

    def __init__(self):
        ros_env()
        import rclpy

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(args=["test_launch"], context=self.context)
        self._tmp = tempfile.TemporaryDirectory(prefix="launch_probe_")
        self._started: dict[tuple[type, str], str | None] = {}

    def close(self) -> None:
        self._rclpy.shutdown(context=self.context)
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def node_class(entry_point: str) -> type:
        """The rclpy Node subclass defined in the module of `entry_point` ('module:function')."""
        from rclpy.node import Node

        module = importlib.import_module(entry_point.partition(":")[0])
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, Node) and c.__module__ == module.__name__]
        if len(classes) != 1:
            raise LookupError(f"module {module.__name__} defines {len(classes)} Node subclasses, expected 1")
        return classes[0]

    def start_error(self, cls: type, node_name: str, params: dict) -> str | None:
        """None if `cls` starts with `params` (as launch_ros passes them, via a params file), else why not."""
        text = yaml.safe_dump({node_name: {"ros__parameters": params}}, sort_keys=True)
        key = (cls, text)
        if key not in self._started:
            path = Path(self._tmp.name) / f"params_{len(self._started)}.yaml"
            path.write_text(text)
            created = []

            class Recorded(cls):  # keeps hold of a node whose __init__ raises, to destroy it
                def __init__(self, **kwargs):
                    created.append(self)
                    super().__init__(**kwargs)

            try:
                Recorded(context=self.context, cli_args=["--ros-args", "--params-file", str(path)])
                self._started[key] = None
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - report, don't exit
                self._started[key] = f"{type(exc).__name__}: {exc}"
            for node in created:
                try:
                    node.destroy_node()
                except Exception:  # noqa: BLE001 - failed before rclpy created its handle
                    pass
        return self._started[key]


# -- parsing a launch file --------------------------------------------------------------------
@dataclass
class LaunchNode:
    line: int
    package: str | None = None
    executable: str | None = None
    name: str | None = None
    params_files: list[Path] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)  # value or UNKNOWN


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _arg(call: ast.Call, index: int | None, keyword: str) -> ast.expr | None:
    """Argument `keyword` of `call`, given by keyword or (if index is not None) by position."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if index is not None and len(call.args) > index else None


def _const_str(expr) -> str | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


class _LaunchFile:
    def __init__(self, path: Path, share: Path):
        self.path = path
        self.share = share
        self.problems: list[str] = []
        self.tree = ast.parse(path.read_text(), filename=str(path))
        # simple `name = expr` bindings, so `parameters=[sim_params, {...}]` resolves
        self.bindings: dict[str, ast.expr] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.bindings[node.targets[0].id] = node.value
        self.calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]
        self.arguments: dict[str, str | None] = {}  # declared launch argument -> default_value
        for call in self.calls:
            if _call_name(call) == "DeclareLaunchArgument":
                name = _const_str(self.resolve(_arg(call, 0, "name")))
                if name is None:
                    self.problem(call, "DeclareLaunchArgument without a literal name")
                    continue
                default = self.resolve(_arg(call, None, "default_value"))
                if isinstance(default, ast.Call) and _call_name(default) == "PathJoinSubstitution":
                    # a file of this package (e.g. a committed checkpoint): resolve it in the share
                    path = self.params_file(default)
                    self.arguments[name] = str(path) if path is not None else None
                    if path is not None and not path.exists():
                        self.problem(call, f"default of launch argument '{name}' does not exist: {path}")
                else:
                    self.arguments[name] = _const_str(default)
                choices = self.resolve(_arg(call, None, "choices"))
                if choices is not None and self.arguments[name] is not None:
                    try:
                        options = ast.literal_eval(choices)
                    except ValueError:
                        options = None
                    if options is not None and self.arguments[name] not in options:
                        self.problem(call, f"default '{self.arguments[name]}' of launch argument '{name}' "
                                           f"is not one of its choices {list(options)}")

    def problem(self, node: ast.AST, message: str) -> None:
        self.problems.append(f"{self.path.name}:{getattr(node, 'lineno', '?')}: {message}")

    def resolve(self, expr, depth: int = 0):
        while isinstance(expr, ast.Name) and expr.id in self.bindings and depth < 20:
            expr, depth = self.bindings[expr.id], depth + 1
        return expr

    def launch_configurations(self) -> list[tuple[ast.Call, str | None]]:
        return [(c, _const_str(self.resolve(_arg(c, 0, "variable_name"))))
                for c in self.calls if _call_name(c) == "LaunchConfiguration"]

    def params_file(self, expr: ast.Call) -> Path | None:
        parts = self.resolve(_arg(expr, 0, "substitutions"))
        if not isinstance(parts, (ast.List, ast.Tuple)) or not parts.elts:
            self.problem(expr, "PathJoinSubstitution needs a literal list")
            return None
        first = self.resolve(parts.elts[0])
        if not (isinstance(first, ast.Call) and _call_name(first) == "FindPackageShare"):
            self.problem(expr, "params file path must start with FindPackageShare('robot_ctrl')")
            return None
        package = _const_str(self.resolve(_arg(first, 0, "package")))
        if package != PACKAGE:
            self.problem(expr, f"params file from package '{package}', only '{PACKAGE}' can be checked")
            return None
        rest = [_const_str(self.resolve(e)) for e in parts.elts[1:]]
        if None in rest:
            self.problem(expr, "params file path parts after FindPackageShare must be string literals")
            return None
        return self.share.joinpath(*rest)

    def override_value(self, expr):
        """The value launch_ros would pass with every launch argument at its default."""
        expr = self.resolve(expr)
        if isinstance(expr, ast.Constant):
            return expr.value
        if isinstance(expr, ast.Call) and _call_name(expr) == "LaunchConfiguration":
            name = _const_str(self.resolve(_arg(expr, 0, "variable_name")))
            default = self.arguments.get(name)
            if default is None:
                return UNKNOWN
            value = yaml.safe_load(default)  # launch_ros: evaluate_parameter_dict
            return value if type(value) in (bool, int, float, str) else default
        if isinstance(expr, ast.Call) and _call_name(expr) == "ParameterValue":
            value = self.override_value(_arg(expr, 0, "value"))
            value_type = self.resolve(_arg(expr, None, "value_type"))
            if value is not UNKNOWN and isinstance(value_type, ast.Name) and value_type.id == "str":
                return str(value)
            return value if value_type is None else UNKNOWN
        try:
            return ast.literal_eval(expr)
        except ValueError:
            return UNKNOWN

    def includes(self) -> list[tuple[ast.Call, Path | None, list[str] | None]]:
        """IncludeLaunchDescription(PythonLaunchDescriptionSource(<robot_ctrl share path>),
        launch_arguments=...): (call, included file, argument names)."""
        out = []
        for call in self.calls:
            if _call_name(call) != "IncludeLaunchDescription":
                continue
            source = self.resolve(_arg(call, 0, "launch_description_source"))
            path = None
            if isinstance(source, ast.Call) and _call_name(source) == "PythonLaunchDescriptionSource":
                target = self.resolve(_arg(source, 0, "launch_file_path"))
                if isinstance(target, ast.Call) and _call_name(target) == "PathJoinSubstitution":
                    path = self.params_file(target)
            if path is None:
                self.problem(call, "included launch file must be PythonLaunchDescriptionSource("
                                   "PathJoinSubstitution([FindPackageShare('robot_ctrl'), ...]))")
            out.append((call, path, self._argument_names(_arg(call, None, "launch_arguments"))))
        return out

    def _argument_names(self, expr) -> list[str] | None:
        expr = self.resolve(expr)
        if expr is None:
            return []
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "items":
            expr = self.resolve(expr.func.value)
        if isinstance(expr, ast.Dict):
            keys = [_const_str(self.resolve(k)) for k in expr.keys]
            return None if None in keys else keys
        if isinstance(expr, ast.DictComp) and len(expr.generators) == 1:
            it = self.resolve(expr.generators[0].iter)
            if isinstance(it, (ast.Tuple, ast.List)):
                keys = [_const_str(self.resolve(e)) for e in it.elts]
                return None if None in keys else keys
        return None

    def nodes(self) -> list[LaunchNode]:
        out = []
        for call in self.calls:
            if _call_name(call) != "Node":
                continue
            n = LaunchNode(line=call.lineno)
            package_expr = self.resolve(_arg(call, None, "package"))
            n.package = _const_str(package_expr)
            n.executable = _const_str(self.resolve(_arg(call, None, "executable")))
            name_expr = self.resolve(_arg(call, None, "name"))
            n.name = _const_str(name_expr)
            if n.package != PACKAGE:
                got = repr(n.package) if n.package is not None else (
                    ast.unparse(package_expr) if package_expr is not None else "none")
                self.problem(call, f"Node package must be '{PACKAGE}', got {got}")
            if n.executable is None:
                self.problem(call, "Node executable must be a string literal")
            if name_expr is not None and n.name is None:
                self.problem(call, "Node name must be a string literal")
            params = self.resolve(_arg(call, None, "parameters"))
            if params is not None and not isinstance(params, (ast.List, ast.Tuple)):
                self.problem(call, "Node parameters must be a literal list")
                params = None
            for elt in params.elts if params is not None else []:
                elt = self.resolve(elt)
                if isinstance(elt, ast.Call) and _call_name(elt) == "PathJoinSubstitution":
                    path = self.params_file(elt)
                    if path is not None:
                        n.params_files.append(path)
                elif isinstance(elt, ast.Dict):
                    for k, v in zip(elt.keys, elt.values):
                        key = _const_str(self.resolve(k))
                        if key is None:
                            self.problem(elt, "parameter override keys must be string literals")
                        else:
                            n.overrides[key] = self.override_value(v)
                else:
                    self.problem(elt, f"cannot check parameters entry {ast.unparse(elt)}")
            out.append(n)
        return out


def _flatten(params: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in params.items():
        if isinstance(v, dict):
            keys += _flatten(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


def _check_parameters(lf: _LaunchFile, n: LaunchNode, node, share: Path, where: str) -> dict[str, Any]:
    """Check the params files and overrides of launch node `n` against the live `node`; return the
    parameters the launch would pass (files merged in order, then the overrides)."""
    node_name, cls_name = node.get_name(), type(node).__name__
    effective: dict[str, Any] = {}
    for params_file in n.params_files:
        shown = params_file.relative_to(share) if params_file.is_relative_to(share) else params_file
        if not params_file.is_file():
            lf.problems.append(f"{where}: params file not found: {shown}")
            continue
        try:
            doc = yaml.safe_load(params_file.read_text())
        except yaml.YAMLError as exc:
            lf.problems.append(f"{where}: {shown} is not valid YAML: {exc}")
            continue
        if not isinstance(doc, dict):
            lf.problems.append(f"{where}: {shown} is not a mapping of node names")
            continue
        for section, body in doc.items():
            if str(section).lstrip("/") not in (node_name, "**"):
                lf.problems.append(f"{where}: {shown} has a section '{section}' but the node is named '{node_name}'")
                continue
            params = body.get("ros__parameters") if isinstance(body, dict) else None
            if not isinstance(params, dict):
                lf.problems.append(f"{where}: {shown}: '{section}' has no 'ros__parameters' mapping")
                continue
            for key in _flatten(params):
                if not node.has_parameter(key):
                    lf.problems.append(f"{where}: {shown}: '{key}' is not a parameter of {cls_name} ('{node_name}')")
            effective.update(params)
        if not any(str(s).lstrip("/") in (node_name, "**") for s in doc):
            lf.problems.append(f"{where}: {shown} has no section '{node_name}:'")
    for key, value in n.overrides.items():
        # use_sim_time is declared by rclpy's Node itself, so has_parameter() is true for it too.
        if not node.has_parameter(key):
            lf.problems.append(f"{where}: override '{key}' is not a parameter of {cls_name} ('{node_name}')")
        elif value is not UNKNOWN:
            effective[key] = value
    return effective


def validate_launch_file(path: Path, share: Path = REPO, probe: NodeProbe | None = None) -> list[str]:
    """Problems found in launch file `path` ([] when it is fine); `share` stands for
    FindPackageShare('robot_ctrl') (the source tree: setup.py installs config/ as it is)."""
    path = Path(path)
    try:
        lf = _LaunchFile(path, share)
    except SyntaxError as exc:
        return [f"{path.name}:{exc.lineno}: syntax error: {exc.msg}"]
    if not any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in lf.tree.body):
        lf.problems.append(f"{path.name}: no module-level generate_launch_description()")
    for call, name in lf.launch_configurations():
        if name is None:
            lf.problem(call, "LaunchConfiguration without a literal name")
        elif name not in lf.arguments:
            lf.problem(call, f"LaunchConfiguration('{name}') has no DeclareLaunchArgument('{name}')")

    includes = lf.includes()
    for call, inc_path, arg_names in includes:
        if inc_path is None:
            continue
        if not inc_path.exists():
            lf.problem(call, f"included launch file {inc_path} does not exist")
            continue
        if arg_names is None:
            lf.problem(call, "launch_arguments of the include cannot be read statically")
            continue
        declared = _LaunchFile(inc_path, share).arguments
        for name in arg_names:
            if name not in declared:
                lf.problem(call, f"launch argument '{name}' is not declared by {inc_path.name}")
    nodes = lf.nodes()
    if not nodes and not includes:
        lf.problems.append(f"{path.name}: starts no Node")
    scripts, declared_nodes = console_scripts(), setup_py_nodes()
    own_probe = probe is None
    probe = probe or NodeProbe()
    try:
        for n in nodes:
            where = f"{path.name}:{n.line}: {n.executable}"
            if n.executable is None:
                continue
            if n.executable not in scripts:
                lf.problems.append(f"{where}: unknown executable '{n.executable}': not a console_script of the "
                                   f"installed {PACKAGE} (have {sorted(scripts)}; reinstall after editing setup.py?)")
                continue
            if declared_nodes.get(n.executable) != scripts[n.executable]:
                lf.problems.append(f"{where}: executable '{n.executable}' is not in setup.py NODES as "
                                   f"'{scripts[n.executable]}'")
            try:
                cls = probe.node_class(scripts[n.executable])
                node = cls(context=probe.context)  # code defaults only: what the node itself declares
            except Exception as exc:  # noqa: BLE001
                lf.problems.append(f"{where}: cannot instantiate its node class: {type(exc).__name__}: {exc}")
                continue
            try:
                node_name = node.get_name()
                if n.name is not None and n.name != node_name:
                    lf.problems.append(f"{where}: name='{n.name}' but {cls.__name__} is named '{node_name}'")
                effective = _check_parameters(lf, n, node, share, where)
            finally:
                node.destroy_node()
            error = probe.start_error(cls, node_name, effective)
            if error:
                lf.problems.append(f"{where}: {cls.__name__} fails to start with the launch's parameters "
                                   f"(launch arguments at their defaults): {error}")
    finally:
        if own_probe:
            probe.close()
    return lf.problems


# -- tests --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe():
    with NodeProbe() as p:
        yield p


def test_launch_files_present():
    names = {p.name for p in LAUNCH_FILES}
    assert {"sim.launch.py", "demo.launch.py", "policy.launch.py", "teleop.launch.py", "robot.launch.py",
            "fake_robot.launch.py"} <= names, names


def test_setup_nodes_are_installed_console_scripts():
    scripts, nodes = console_scripts(), setup_py_nodes()
    assert nodes, "setup.py NODES is empty"
    stale = {k: v for k, v in nodes.items() if scripts.get(k) != v}
    assert not stale, f"setup.py NODES not in the installed entry points (pip install -e . again?): {stale}"


def test_node_classes_are_the_real_ones():
    from robot_ctrl.ros.controller_node import ControllerNode
    from robot_ctrl.ros.demo_driver import DemoDriver
    from robot_ctrl.ros.safety_node import SafetyNode
    from robot_ctrl.ros.sim_node import SimNode

    scripts = console_scripts()
    names = ("sim_node", "controller_node", "demo_driver", "safety_node")
    found = {name: NodeProbe.node_class(scripts[name]) for name in names}
    assert found == {"sim_node": SimNode, "controller_node": ControllerNode, "demo_driver": DemoDriver,
                     "safety_node": SafetyNode}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_file_valid(path, probe):
    problems = validate_launch_file(path, probe=probe)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_sim_is_the_clock_source(path):
    """The sim node publishes /clock and runs on wall time; every other node follows use_sim_time.
    The robot launch files have no simulator: everything runs on the wall clock, as the robot does."""
    lf = _LaunchFile(path, REPO)
    if path.name in ("robot.launch.py", "fake_robot.launch.py"):
        for n in lf.nodes():
            assert n.overrides.get("use_sim_time") is False, f"{path.name}: {n.executable} must use the wall clock"
        return
    for n in lf.nodes():
        if n.executable == "sim_node":
            assert n.overrides.get("use_sim_time") is False, f"{path.name}: sim_node must get use_sim_time False"
        else:
            assert n.overrides.get("use_sim_time") is True, \
                f"{path.name}: {n.executable} should follow use_sim_time (default true)"


def test_expected_nodes():
    def executables(name):
        lf = _LaunchFile(REPO / "launch" / name, REPO)
        found = [n.executable for n in lf.nodes()]
        for _, inc_path, _ in lf.includes():
            found += executables(inc_path.name)
        return sorted(found)

    assert executables("sim.launch.py") == ["controller_node", "safety_node", "sim_node"]
    assert executables("demo.launch.py") == ["controller_node", "demo_driver", "safety_node", "sim_node"]
    assert executables("policy.launch.py") == ["controller_node", "policy_node", "safety_node", "sim_node"]
    assert executables("teleop.launch.py") == ["controller_node", "policy_node", "safety_node", "sim_node",
                                               "teleop_node"]
    assert executables("robot.launch.py") == ["controller_node", "lifecycle_supervisor", "policy_node",
                                              "safety_node"]
    assert executables("fake_robot.launch.py") == ["controller_node", "fake_hardware_node", "lifecycle_supervisor",
                                                   "policy_node", "safety_node"]


BAD_LAUNCH = '''
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def make_launch_description():  # misnamed
    cfg = PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "bad.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="panda"),
        DeclareLaunchArgument("timing_mode", default_value="sometimes", choices=["lockstep", "realtime"]),
        Node(package="robot_ctrl", executable="no_such_node"),
        Node(package="other_pkg", executable="sim_node", name="sim",
             parameters=[PathJoinSubstitution([FindPackageShare("robot_ctrl"), "config", "missing.yaml"]),
                         {"robot": LaunchConfiguration("robot"), "no_such_param": 1.0,
                          "controller_name": LaunchConfiguration("undeclared_arg")}]),
        Node(package="robot_ctrl", executable="controller_node", name="ctrl",
             parameters=[cfg, {"command_mode": "torque"}]),
    ])
'''

BAD_YAML = """
controller:
  ros__parameters:
    robot: panda
    kp_typo: []
demo_driver:
  ros__parameters:
    robot: panda
"""


def test_validator_reports_each_problem(tmp_path, probe):
    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    (share / "config" / "bad.yaml").write_text(BAD_YAML)
    launch = tmp_path / "bad.launch.py"
    launch.write_text(BAD_LAUNCH)

    problems = validate_launch_file(launch, share=share, probe=probe)
    text = "\n".join(problems)
    expected = [
        "no module-level generate_launch_description()",
        "default 'sometimes' of launch argument 'timing_mode' is not one of its choices",
        "unknown executable 'no_such_node'",
        "Node package must be 'robot_ctrl', got 'other_pkg'",
        "params file not found: config/missing.yaml",
        "override 'no_such_param' is not a parameter of SimNode ('sim')",
        "LaunchConfiguration('undeclared_arg') has no DeclareLaunchArgument('undeclared_arg')",
        "name='ctrl' but ControllerNode is named 'controller'",
        "config/bad.yaml: 'kp_typo' is not a parameter of ControllerNode ('controller')",
        "config/bad.yaml has a section 'demo_driver' but the node is named 'controller'",
        "ControllerNode fails to start with the launch's parameters",  # command_mode: torque
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, f"not reported: {missing}\nreported:\n{text}"
    # the good parts of the bad file raise nothing: the override 'robot' and the sim_node executable
    assert "'robot' is not a parameter" not in text
    assert "unknown executable 'sim_node'" not in text


def test_validator_catches_wrong_types(tmp_path, probe):
    """A YAML value of the wrong type (int for a double) stops the node, as it would under ros2 launch."""
    share = tmp_path / "share"
    (share / "config").mkdir(parents=True)
    (share / "config" / "sim.yaml").write_text(
        (REPO / "config" / "sim.yaml").read_text().replace("control_rate_hz: 500.0", "control_rate_hz: 500"))
    problems = validate_launch_file(REPO / "launch" / "sim.launch.py", share=share, probe=probe)
    assert any("SimNode fails to start" in p and "control_rate_hz" in p for p in problems), problems


def test_validator_checks_includes(tmp_path, probe):
    (tmp_path / "launch").mkdir()
    (tmp_path / "config").symlink_to(REPO / "config")
    (tmp_path / "launch" / "sim.launch.py").write_text((REPO / "launch" / "sim.launch.py").read_text())
    text = (REPO / "launch" / "demo.launch.py").read_text()
    bad = tmp_path / "launch" / "bad.launch.py"
    bad.write_text(text.replace('"robot": LaunchConfiguration("robot"),', '"robot": LaunchConfiguration("robot"),\n'
                                '            "no_such_arg": LaunchConfiguration("no_such_arg"),').replace(
        'DeclareLaunchArgument("robot",', 'DeclareLaunchArgument("no_such_arg", default_value="x"),\n'
        '        DeclareLaunchArgument("robot",'))
    problems = "\n".join(validate_launch_file(bad, share=tmp_path, probe=probe))
    assert "launch argument 'no_such_arg' is not declared by sim.launch.py" in problems, problems
    missing = tmp_path / "launch" / "missing.launch.py"
    missing.write_text(text.replace('"sim.launch.py"', '"gone.launch.py"'))
    problems = "\n".join(validate_launch_file(missing, share=tmp_path, probe=probe))
    assert "gone.launch.py does not exist" in problems, problems
