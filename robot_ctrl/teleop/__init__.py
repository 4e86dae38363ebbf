"""Teleoperation core (ROS-free): devices -> one `Prompt` schema, deadman, pose clutch.

Devices register by name; ``make_device("keyboard" | "gamepad" | "spacemouse" | "web" | "replay",
**kwargs)`` builds one. See `schema` for the prompt, `base` for the device contract.
"""
from .base import DEVICES, Device, DeviceUnavailable, deadband, make_device, register
from .gamepad import GamepadDevice
from .keyboard import KeyboardDevice
from .replay import ReplayDevice, load_prompts, save_prompts, scripted_reach_stream
from .schema import MODES, Clutch, Deadman, Prompt
from .spacemouse import SpaceMouseDevice
from .web import WebDevice

__all__ = [
    "DEVICES", "MODES", "Clutch", "Deadman", "Device", "DeviceUnavailable", "GamepadDevice",
    "KeyboardDevice", "Prompt", "ReplayDevice", "SpaceMouseDevice", "deadband", "load_prompts",
    "WebDevice", "make_device", "register", "save_prompts", "scripted_reach_stream",
]
