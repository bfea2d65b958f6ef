"""The durable local record of jobs, tasks and images (SQLite by default), and the image files."""
