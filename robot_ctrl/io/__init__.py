"""Reading and writing run data without ROS: rosbag2 bags (`bag`)."""
