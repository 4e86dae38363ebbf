"""Thin rclpy adapters over the ROS-free core. Nodes declare parameters, convert messages,
call the core and convert back; no algorithm lives here."""
